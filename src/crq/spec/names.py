"""A spec's name: its default from the spec's key, and one live spec per name.

The name is what notifications (`specName` attribute, subject), filter policies and
`crq status` show. Default: the spec's key under the specs prefix without its extension, folders
kept (`specs/team-a/weekly.yaml` -> `team-a/weekly`), so two specs in two folders never share it.
An explicit `name:` overrides it.

Two live specs may not share a name. The first spec to run under a name claims it: an item
in the runs table keyed by the name, holding the spec's key (a conditional write). Another spec
asking for the same name is rejected, unless the owner no longer uses it: its object is gone
(deleted) or now has another name (renamed) or is no longer a valid spec; then the claim passes
to the newcomer (conditional on the owner read). No delete event is needed: claims are checked
when they are contested.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from crq.errors import SpecUnreadable
from crq.ledger import FieldProblem

if TYPE_CHECKING:
    from crq.ports import Collaborators

# A default name: segments of letters, digits, '.', '_' or '-' (each starting with a letter
# or digit) joined by '/', at most 256 characters. Valid as an SNS attribute value and an S3
# key prefix ({{ spec_name }}).
DEFAULT_NAME_PATTERN = r"^(?=.{1,256}$)[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*$"
DEFAULT_NAME_RULE = (
    "folders and a file name of letters, digits, '.', '_' or '-', each starting with a letter "
    "or digit, at most 256 characters"
)
# Local paths (crq validate, crq render): the part after the last folder with this name.
SPECS_FOLDER = "specs"
# A claim passed on from an owner that no longer uses the name can be contested again at once.
_MAX_CLAIM_ROUNDS = 3


def _without_extension(path: str) -> str:
    folder, _, name = path.rpartition("/")
    dot = name.rfind(".")
    stem = name[:dot] if dot > 0 else name
    return f"{folder}/{stem}" if folder else stem


def default_name(key: str, prefix: str) -> str:
    """`specs/team-a/weekly.yaml` under `specs/` -> `team-a/weekly`."""
    relative = key[len(prefix) :] if prefix and key.startswith(prefix) else key
    return _without_extension(relative)


def default_name_for_path(source: str) -> str:
    """The default name of a file named by a path or URI, as the start function would give it
    once uploaded: the part after the last `specs` folder, or else the file's stem."""
    parts = re.split(r"[/\\]", source)
    folders = [i for i, part in enumerate(parts[:-1]) if part == SPECS_FOLDER]
    relative = "/".join(parts[folders[-1] + 1 :]) if folders else parts[-1]
    return _without_extension(relative)


def claim_name(name: str, bucket: str, key: str, pipeline: Collaborators) -> FieldProblem | None:
    """Claim `name` for the spec at `key`; a problem on field `name` if a live spec holds it."""
    from crq.spec.load import load_spec
    from crq.spec.problems import SpecInvalid

    ledger = pipeline.ledger
    for _ in range(_MAX_CLAIM_ROUNDS):
        owner = ledger.claim_spec_name(name, key, pipeline.clock())
        if owner is None or owner == key:
            return None
        try:
            obj = pipeline.specs.get_spec(bucket, owner, None)
            owners_name = load_spec(
                obj.data,
                f"s3://{bucket}/{owner}",
                default_name=default_name(owner, pipeline.settings.specs_prefix),
            ).name
        except (SpecUnreadable, SpecInvalid):
            owners_name = None  # deleted, or no longer a spec: the name is free
        if owners_name == name:
            return FieldProblem(
                field="name",
                message=f"{name!r} is already the name of s3://{bucket}/{owner}; two specs "
                "cannot share a name: set another name (name: ...) in one of them",
            )
        ledger.pass_spec_name(name, owner, key, pipeline.clock())
    return FieldProblem(
        field="name", message=f"{name!r} is contested by other specs right now: upload again"
    )
