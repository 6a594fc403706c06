"""The placeholder grammar of spec files: `{{ run_date - 7d }}`, `{{ run_time | %Y/%m/%d }}`.

    placeholder := "{{" expression [ "|" format ] "}}"      (on one line; spaces are free)
    expression  := variable { ("+" | "-") AMOUNT UNIT }
                 | "'" characters "'"                       (a literal, e.g. {{ '{{' }})
    variable    := run_time | run_date | spec_name | trigger
    UNIT        := w | d | h | m                            (weeks, days, hours, minutes)
    format      := literal characters and %-directives from DIRECTIVES

Regular expressions read it (`_PLACEHOLDER`, `_TOKEN`, `_FORMAT_PART`): nothing is executed, no
eval, no Jinja. Every variable has a known type, so type mistakes (arithmetic on `spec_name`, `%H`
on `run_date`) are found when the spec is loaded, not when the schedule fires.

Error messages of fields holding sensitive values (query parameters) must not echo the value, so
a `TemplateIssue` keeps the problem (never user text) apart from the placeholder's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Literal

Kind = Literal["datetime", "date", "string"]

VARIABLES: dict[str, Kind] = {
    "run_time": "datetime",
    "run_date": "date",
    "spec_name": "string",
    "trigger": "string",
}
UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}
DATE_UNITS = frozenset("wd")
MAX_AMOUNT = 99_999
MAX_ISSUES = 20  # per value: enough to fix, and error lists stay small

DIRECTIVES: dict[str, str] = {
    "Y": "year, 4 digits (2026)",
    "y": "year without century (26)",
    "m": "month 01-12",
    "d": "day of the month 01-31",
    "j": "day of the year 001-366",
    "H": "hour 00-23",
    "M": "minute 00-59",
    "S": "second 00-59",
    "G": "ISO 8601 year",
    "V": "ISO 8601 week 01-53",
    "u": "ISO 8601 weekday 1-7 (Monday is 1)",
    "a": "weekday abbreviated (Mon)",
    "A": "weekday (Monday)",
    "b": "month abbreviated (Jan)",
    "B": "month (January)",
    "%": "a literal %",
}
TIME_DIRECTIVES = frozenset("HMS")
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
# strftime renders the numeric directives; not these: names follow the C library's locale, and
# glibc does not pad years before 1000. A rendered S3 prefix is the same on a laptop and in Lambda.
_NOT_STRFTIME: dict[str, Callable[[date], str]] = {
    "Y": lambda value: f"{value.year:04d}",
    "G": lambda value: f"{value.isocalendar().year:04d}",
    "a": lambda value: _DAYS[value.weekday()][:3],
    "A": lambda value: _DAYS[value.weekday()],
    "b": lambda value: _MONTHS[value.month - 1][:3],
    "B": lambda value: _MONTHS[value.month - 1],
}

_BRACES = re.compile(r"\{\{|\}\}")
# A placeholder, on one line. Before the "|", a quoted literal may hold braces and '|'; the first
# "}}" outside one closes the placeholder.
_PLACEHOLDER = re.compile(
    r"""
    \{\{
    (?P<expression> (?: '[^'\n]*' | [^'|}\n] | \}(?!\}) )* )
    (?: \| (?P<format> (?: [^}\n] | \}(?!\}) )* ) )?
    \}\}
    """,
    re.VERBOSE,
)
# The expression's tokens; the last three groups are the mistakes.
_TOKEN = re.compile(
    r"""
      (?P<blank>    [ \t]+ )
    | '(?P<literal> [^']* )'                          # {{ '{{' }}
    | (?P<name>     [A-Za-z_][A-Za-z0-9_]* )          # run_date
    | (?P<amount>   (?P<number>[0-9]+) (?P<unit>[A-Za-z0-9]*) )   # 7d
    | (?P<op>       [+-] )
    | (?P<nested>   \{\{ )
    | (?P<unclosed> ' )
    | (?P<bad>      . )
    """,
    re.VERBOSE,
)
_TOKEN_PROBLEMS = {
    "nested": "'{{' inside a placeholder",
    "unclosed": "a quoted literal is not closed by '",
}
# A format: directives (`%` and one character, none at the end) and the text between them.
_FORMAT_PART = re.compile(r"%(?P<directive>.?) | (?P<text>[^%]+)", re.VERBOSE)
_DIRECTIVE = re.compile(r"%(.)")


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What placeholders are rendered from: the run's time, seen in the spec's zone (UTC unless
    the spec has `timezone:`), the spec's name, the trigger."""

    run_time: datetime
    spec_name: str
    trigger: str
    zone: tzinfo = UTC

    def __post_init__(self) -> None:
        if self.run_time.tzinfo is None or self.run_time.utcoffset() is None:
            raise ValueError("run_time must be timezone-aware")
        object.__setattr__(self, "run_time", self.run_time.astimezone(self.zone))

    @property
    def run_date(self) -> date:
        return self.run_time.date()

    def value_of(self, variable: str) -> datetime | date | str:
        if variable not in VARIABLES:
            raise KeyError(variable)
        value: datetime | date | str = getattr(self, variable)
        return value


@dataclass(frozen=True, slots=True)
class TemplateIssue:
    """One problem in one placeholder. `problem` never contains text from the template."""

    position: int  # 0-based offset in the value of the "{{" (or stray "}}") concerned
    snippet: str  # the placeholder's text, for values that are not sensitive
    problem: str

    def describe(self, value: str, *, sensitive: bool) -> str:
        where = _where(value, self.position)
        if sensitive:
            return f"placeholder at {where}: {self.problem}"
        return f"placeholder {_shorten(self.snippet)} at {where}: {self.problem}"


class TemplateError(ValueError):
    """A value whose placeholders cannot be parsed or rendered."""

    def __init__(self, issues: list[TemplateIssue]) -> None:
        super().__init__("; ".join(issue.problem for issue in issues))
        self.issues = issues


@dataclass(frozen=True, slots=True)
class Offset:
    sign: int  # +1 or -1
    amount: int
    unit: str

    def apply(self, value: datetime | date) -> datetime | date:
        """Weeks and days move the calendar (06:00 stays 06:00 across a DST change); hours and
        minutes are elapsed time."""
        delta = UNITS[self.unit] * (self.sign * self.amount)
        if not isinstance(value, datetime) or value.tzinfo is UTC:
            return value + delta
        if self.unit in DATE_UNITS:
            return (value + delta).astimezone(UTC).astimezone(value.tzinfo)
        return (value.astimezone(UTC) + delta).astimezone(value.tzinfo)


@dataclass(frozen=True, slots=True)
class Placeholder:
    position: int
    text: str
    variable: str | None  # None for a quoted literal
    literal: str
    offsets: tuple[Offset, ...]
    format: str | None  # checked: text and DIRECTIVES only

    def evaluate(self, context: RenderContext) -> str:
        if self.variable is None:
            return self.literal
        value = context.value_of(self.variable)
        if isinstance(value, str):
            return value
        try:
            for offset in self.offsets:
                value = offset.apply(value)
        except OverflowError:
            raise TemplateError(
                [TemplateIssue(self.position, self.text, "the offset leaves the calendar")]
            ) from None
        if self.format is not None:
            return _strftime(value, self.format)
        if isinstance(value, datetime):  # not strftime: %Y is not zero-padded everywhere
            return f"{value.date().isoformat()}T{value:%H:%M:%S}{_offset_text(value)}"
        return value.isoformat()


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed value: literal text and placeholders, in order."""

    parts: tuple[str | Placeholder, ...]

    @property
    def has_placeholders(self) -> bool:
        return any(isinstance(part, Placeholder) for part in self.parts)

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(
            p.variable for p in self.parts if isinstance(p, Placeholder) and p.variable
        )

    def render(self, context: RenderContext) -> str:
        return "".join(
            part if isinstance(part, str) else part.evaluate(context) for part in self.parts
        )


def has_placeholder_syntax(value: str) -> bool:
    """Whether a value contains anything the grammar would interpret."""
    return "{{" in value or "}}" in value


def parse_template(value: str) -> Template:
    """Parse a value; raise TemplateError listing its bad placeholders (the first MAX_ISSUES).

    Linear in the length of the value, whatever it holds: it may be a 256 KiB queryString.
    """
    parts: list[str | Placeholder] = []
    issues: list[TemplateIssue] = []
    text_start = i = 0
    while len(issues) < MAX_ISSUES and (brace := _BRACES.search(value, i)):
        at = brace.start()
        if brace[0] == "}}":
            issues.append(
                TemplateIssue(at, "}}", "'}}' without an opening '{{' (write {{ '}}' }})")
            )
            i = at + 2
            continue
        if at > text_start:
            parts.append(value[text_start:at])
        found = _PLACEHOLDER.match(value, at)
        if found is None:
            line_end = value.find("\n", at)
            stop = len(value) if line_end == -1 else line_end
            problem = (
                "'{{' is not closed by '}}' on the same line (write {{ '{{' }} for a literal '{{')"
            )
            issues.append(TemplateIssue(at, value[at : min(stop, at + 80)], problem))
            i = text_start = stop
            continue
        try:
            parsed = _parse_body(found["expression"], found["format"])
            parts.append(Placeholder(at, found[0], *parsed))
        except _Problem as exc:
            issues.append(TemplateIssue(at, found[0], str(exc)))
        i = text_start = found.end()
    if issues:
        raise TemplateError(issues)
    if text_start < len(value):
        parts.append(value[text_start:])
    return Template(tuple(parts))


def render_value(value: str, context: RenderContext) -> str:
    return parse_template(value).render(context)


class _Problem(Exception):
    """What is wrong with a placeholder's body (never quoting it)."""


_Parsed = tuple[str | None, str, tuple[Offset, ...], str | None]


@lru_cache(maxsize=512)  # a query often repeats the same placeholder
def _parse_body(expression: str, fmt: str | None) -> _Parsed:
    """(variable or None for a literal, the literal, offsets, format); raises _Problem."""
    tokens = []
    for token in _TOKEN.finditer(expression):
        if token.lastgroup == "bad":
            at = token.start() + 3  # 1-based, in the placeholder with its "{{"
            raise _Problem(f"unexpected character at character {at} of the placeholder")
        if token.lastgroup in _TOKEN_PROBLEMS:
            raise _Problem(_TOKEN_PROBLEMS[token.lastgroup])
        if token.lastgroup != "blank":
            tokens.append(token)
    if not tokens:
        raise _Problem("the placeholder is empty; put a variable in it: " + ", ".join(VARIABLES))
    first, rest = tokens[0], tokens[1:]
    if first.lastgroup == "literal":
        if rest or fmt is not None:
            raise _Problem("a quoted literal takes no offset and no format")
        return None, first["literal"], (), None
    if first.lastgroup != "name":
        raise _Problem("a placeholder starts with a variable: " + ", ".join(VARIABLES))
    variable = first[0]
    if variable not in VARIABLES:
        raise _Problem("unknown variable; use one of " + ", ".join(VARIABLES))
    kind = VARIABLES[variable]
    offsets = tuple(_offset(variable, kind, rest[i : i + 2]) for i in range(0, len(rest), 2))
    if fmt is None:
        return variable, "", offsets, None
    if kind == "string":
        raise _Problem(f"{variable} is text: a '|' format applies to run_time and run_date only")
    return variable, "", offsets, _checked_format(fmt, kind)


def _offset(variable: str, kind: Kind, tokens: list[re.Match[str]]) -> Offset:
    op = tokens[0]
    if op.lastgroup != "op":
        raise _Problem("expected '+' or '-' and an amount such as 7d after the variable")
    if kind == "string":
        raise _Problem(f"{variable} is text: offsets apply to run_time and run_date only")
    if len(tokens) < 2 or tokens[1].lastgroup != "amount":
        raise _Problem(f"'{op[0]}' must be followed by an amount and a unit, such as 7d")
    number, unit = tokens[1]["number"], tokens[1]["unit"]
    if not unit:
        raise _Problem("an amount needs a unit: w (weeks), d (days), h (hours) or m (minutes)")
    if unit not in UNITS:
        raise _Problem("unknown unit; use w (weeks), d (days), h (hours) or m (minutes)")
    if kind == "date" and unit not in DATE_UNITS:
        raise _Problem(f"{variable} is a date: offsets are in w or d (use run_time for h and m)")
    if int(number) > MAX_AMOUNT:
        raise _Problem(f"an amount is at most {MAX_AMOUNT}")
    return Offset(1 if op[0] == "+" else -1, int(number), unit)


def _checked_format(fmt: str, kind: Kind) -> str:
    fmt = fmt.strip(" ")
    if not fmt:
        raise _Problem("the format after '|' is empty; e.g. | %Y/%m/%d")
    for part in _FORMAT_PART.finditer(fmt):
        directive, text = part["directive"], part["text"]
        if text is not None and (not text.isprintable() or any(c in "{}|'" for c in text)):
            raise _Problem("a format cannot contain braces, '|', quotes, tabs or line breaks")
        if directive == "":
            raise _Problem("the format ends with a lone %")
        if directive is not None and directive not in DIRECTIVES:
            raise _Problem(
                f"unsupported format directive %{directive}; use "
                + " ".join("%" + d for d in DIRECTIVES)
            )
        if kind == "date" and directive in TIME_DIRECTIVES:
            raise _Problem(f"run_date has no time of day: %{directive} needs run_time")
    return fmt


def _strftime(value: date, fmt: str) -> str:
    def directive(found: re.Match[str]) -> str:
        own = _NOT_STRFTIME.get(found[1])
        return own(value) if own else value.strftime(found[0])

    return _DIRECTIVE.sub(directive, fmt)


def _offset_text(value: datetime) -> str:
    """`Z` in UTC, else the zone's offset at that moment (`+02:00`)."""
    offset = value.utcoffset()
    if value.tzinfo is UTC or not offset:
        return "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _where(value: str, position: int) -> str:
    if "\n" not in value:
        return f"character {position + 1}"
    line = value.count("\n", 0, position) + 1
    column = position - (value.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def _shorten(snippet: str, limit: int = 60) -> str:
    return snippet if len(snippet) <= limit else snippet[: limit - 3] + "..."
