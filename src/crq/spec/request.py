"""The request of a spec: where placeholders may be, rendering them, and checking the result.

The rendered request is checked against every constraint of the Clean Rooms model
(apimodel.check_shape) and the rules the model cannot express (`_semantic_errors`), at load time
(rendered at a probe time) and again for each run (`render_request`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from crq.spec.apimodel import FieldError, check_shape, join
from crq.spec.model import REQUEST_SHAPE
from crq.spec.problems import SpecInvalid, tidy
from crq.spec.render import RenderContext, TemplateError, has_placeholder_syntax, parse_template

if TYPE_CHECKING:
    from crq.spec.model import Spec

# The values that may hold placeholders, by field path; parameter values are sensitive.
PLACEHOLDER_FIELDS = "queryString, parameter values and keyPrefix"
_TEMPLATED = re.compile(
    r"sqlParameters\.queryString"
    r"|sqlParameters\.parameters\..+"
    r"|resultConfiguration\.outputConfiguration\.s3\.keyPrefix"
    r"|resultConfiguration\.outputConfiguration\.distribute\.locations\[\d+\]\.s3\.keyPrefix"
)
_SENSITIVE = re.compile(r"sqlParameters\.parameters\..+")
REDACTED = "***"


def render_request(spec: Spec, context: RenderContext) -> dict[str, Any]:
    """The exact StartProtectedQuery keyword arguments of one run of the spec.

    Raises SpecInvalid if a rendered value breaks a constraint (e.g. a keyPrefix too long on
    that date) or a placeholder cannot be evaluated at that time.
    """
    errors: list[FieldError] = []
    rendered = checked_render(spec.request_template(), context, errors, skip=set())
    if errors:
        raise SpecInvalid(tidy(errors), source=spec.source)
    return rendered


def redacted_request(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of a request with sensitive values (query parameter values) replaced by ***."""
    out = dict(request)
    sql = out.get("sqlParameters")
    if isinstance(sql, dict) and isinstance(sql.get("parameters"), dict):
        out["sqlParameters"] = {
            **sql,
            "parameters": {name: REDACTED for name in sql["parameters"]},
        }
    return out


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in a document, with its field path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, join(path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, join(path, i))
    elif isinstance(value, str):
        yield path, value


def misplaced_placeholders(document: dict[str, Any]) -> list[FieldError]:
    return [
        FieldError(path, f"placeholders ({{{{ ... }}}}) are allowed only in {PLACEHOLDER_FIELDS}")
        for path, value in _strings(document)
        if "{{" in value and not _TEMPLATED.fullmatch(path)
    ]


def _map_strings(value: Any, path: str, fn: Callable[[str, str], str]) -> Any:
    if isinstance(value, dict):
        return {key: _map_strings(item, join(path, key), fn) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, join(path, i), fn) for i, item in enumerate(value)]
    if isinstance(value, str):
        return fn(path, value)
    return value


def _render(
    request: dict[str, Any],
    context: RenderContext,
    errors: list[FieldError],
    rendered_paths: set[str] | None = None,
) -> dict[str, Any]:
    """The request with the placeholders of templated fields rendered; problems go to errors."""

    def render_one(path: str, value: str) -> str:
        if not _TEMPLATED.fullmatch(path) or not has_placeholder_syntax(value):
            return value
        sensitive = bool(_SENSITIVE.fullmatch(path))
        try:
            template = parse_template(value)
            result = template.render(context)
        except TemplateError as exc:
            errors.extend(
                FieldError(path, issue.describe(value, sensitive=sensitive)) for issue in exc.issues
            )
            return value
        if rendered_paths is not None:
            rendered_paths.add(path)
        return result

    rendered: dict[str, Any] = _map_strings(request, "", render_one)
    return rendered


def checked_render(
    request: dict[str, Any], context: RenderContext, errors: list[FieldError], skip: set[str]
) -> dict[str, Any]:
    """Render the request at `context` and check the result; problems go to `errors`.

    Fields in `skip`, and fields whose placeholders failed, are already reported: the checks of
    the rendered request leave them out rather than say the same thing twice.
    """
    found: list[FieldError] = []
    rendered_paths: set[str] = set()
    rendered = _render(request, context, found, rendered_paths)
    skip = skip | {error.field for error in found}
    for error in check_shape(REQUEST_SHAPE, rendered) + _semantic_errors(rendered):
        if error.field in skip:
            continue
        if error.field in rendered_paths:
            error = FieldError(error.field, f"{error.message} (once its placeholders are rendered)")
        elif error.message == "must be a string" and _is_number(_value_at(rendered, error.field)):
            # YAML reads an unquoted 111111111111 as a number: say how to write it.
            error = FieldError(error.field, "must be a string: put the number in quotes")
        found.append(error)
    errors.extend(found)
    return rendered


_PATH_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def _value_at(document: Any, path: str) -> Any:
    """The value at a field path, or None if the path does not lead anywhere."""
    node = document
    for index, key in _PATH_PART.findall(path):
        if index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        elif key and isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _semantic_errors(request: dict[str, Any]) -> list[FieldError]:
    """What the seed documents but the model cannot express."""
    errors: list[FieldError] = []
    sql = request.get("sqlParameters")
    if isinstance(sql, dict):
        has_query, has_template = "queryString" in sql, "analysisTemplateArn" in sql
        if has_query and has_template:
            errors.append(
                FieldError(
                    "sqlParameters",
                    "set queryString or analysisTemplateArn, not both",
                )
            )
        elif not has_query and not has_template:
            errors.append(
                FieldError(
                    "sqlParameters",
                    "set queryString (SQL) or analysisTemplateArn (an analysis template)",
                )
            )
        query = sql.get("queryString")
        if isinstance(query, str) and not query.strip():
            errors.append(FieldError("sqlParameters.queryString", "is empty"))
        if "parameters" in sql and not has_template:
            errors.append(
                FieldError(
                    "sqlParameters.parameters",
                    "parameters apply to an analysis template only: set analysisTemplateArn",
                )
            )
    result = request.get("resultConfiguration")
    output = result.get("outputConfiguration") if isinstance(result, dict) else None
    distribute = output.get("distribute") if isinstance(output, dict) else None
    locations = distribute.get("locations") if isinstance(distribute, dict) else None
    if isinstance(locations, list):
        path = "resultConfiguration.outputConfiguration.distribute.locations"
        s3_locations = [
            i
            for i, location in enumerate(locations)
            if isinstance(location, dict) and "s3" in location
        ]
        errors.extend(
            FieldError(
                join(join(path, i), "s3"),
                f"at most one S3 location (the first is locations[{s3_locations[0]}])",
            )
            for i in s3_locations[1:]
        )
    return errors
