"""The placeholder grammar of spec files: `{{ run_date - 7d }}`, `{{ run_time | %Y/%m/%d }}`.

    placeholder := "{{" expression [ "|" format ] "}}"      (on one line; spaces are free)
    expression  := variable { ("+" | "-") AMOUNT UNIT }
                 | "'" characters "'"                       (a literal, e.g. {{ '{{' }})
    variable    := run_time | run_date | spec_name | trigger
    UNIT        := w | d | h | m                            (weeks, days, hours, minutes)
    format      := literal characters and %-directives from DIRECTIVES

A hand-written scanner and parser evaluate it: nothing is executed, no eval, no Jinja. Every
variable has a known type, so type mistakes (arithmetic on `spec_name`, `%H` on `run_date`) are
found when the spec is loaded, not when the schedule fires.

Error messages of fields holding sensitive values (query parameters) must not echo the value, so
a `TemplateIssue` keeps the problem (never user text) apart from the placeholder's text.
"""

from __future__ import annotations

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

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NAMES = (
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
)
# Implemented here rather than by strftime: the C library's output varies by platform and locale,
# and a rendered S3 prefix must be the same on a laptop and in Lambda.
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
_FORBIDDEN_IN_FORMAT = frozenset("{}|'\n\r\t")


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
        match variable:
            case "run_time":
                return self.run_time
            case "run_date":
                return self.run_date
            case "spec_name":
                return self.spec_name
            case "trigger":
                return self.trigger
        raise KeyError(variable)


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


# Builds the error for the placeholder being parsed, from a problem description.
_Fail = Callable[[str], Exception]


@dataclass(frozen=True, slots=True)
class Offset:
    sign: int  # +1 or -1
    amount: int
    unit: str

    @property
    def delta(self) -> timedelta:
        return UNITS[self.unit] * (self.sign * self.amount)

    def apply(self, value: datetime | date) -> datetime | date:
        """Weeks and days move the calendar (06:00 stays 06:00 across a DST change); hours and
        minutes are elapsed time."""
        if not isinstance(value, datetime) or value.tzinfo is UTC:
            return value + self.delta
        zone = value.tzinfo
        if self.unit in DATE_UNITS:
            return (value + self.delta).astimezone(UTC).astimezone(zone)
        return (value.astimezone(UTC) + self.delta).astimezone(zone)


@dataclass(frozen=True, slots=True)
class Placeholder:
    position: int
    text: str
    variable: str | None  # None for a quoted literal
    literal: str
    offsets: tuple[Offset, ...]
    format: tuple[str, ...] | None  # literal chunks and two-character directives ("%Y")

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
            return "".join(_format_chunk(value, chunk) for chunk in self.format)
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
    opening, closing = value.find("{{"), value.find("}}")
    while len(issues) < MAX_ISSUES:
        # Search again only once the scan has passed the last hit, so no text is searched twice.
        if -1 < opening < i:
            opening = value.find("{{", i)
        if -1 < closing < i:
            closing = value.find("}}", i)
        if closing != -1 and (opening == -1 or closing < opening):
            issues.append(
                TemplateIssue(closing, "}}", "'}}' without an opening '{{' (write {{ '}}' }})")
            )
            i = closing + 2
            continue
        if opening == -1:
            break
        if opening > text_start:
            parts.append(value[text_start:opening])
        end = _placeholder_end(value, opening + 2)
        if end is None:
            line_end = value.find("\n", opening)
            stop = len(value) if line_end == -1 else line_end
            issues.append(
                TemplateIssue(
                    opening,
                    value[opening : min(stop, opening + 80)],
                    "'{{' is not closed by '}}' on the same line (write {{ '{{' }} for "
                    "a literal '{{')",
                )
            )
            i = text_start = stop
            continue
        text = value[opening : end + 2]
        try:
            parts.append(_parse_placeholder(value[opening + 2 : end], opening, text))
        except TemplateError as exc:
            issues.extend(exc.issues)
        i = text_start = end + 2
    if issues:
        raise TemplateError(issues)
    if text_start < len(value):
        parts.append(value[text_start:])
    return Template(tuple(parts))


def render_value(value: str, context: RenderContext) -> str:
    return parse_template(value).render(context)


def _placeholder_end(value: str, start: int) -> int | None:
    """Offset of the "}}" closing a placeholder whose body starts at `start`; None if unclosed.

    A quoted literal may hold braces ({{ '}}' }}), so quotes before the format's "|" are skipped.
    """
    in_format = in_quote = False
    for i in range(start, len(value)):
        char = value[i]
        if char == "\n":
            return None
        if in_quote:
            in_quote = char != "'"
        elif char == "}" and value.startswith("}}", i):
            return i
        elif char == "|":
            in_format = True
        elif char == "'" and not in_format:
            in_quote = True
    return None


def _parse_placeholder(body: str, position: int, text: str) -> Placeholder:
    try:
        variable, literal, offsets, directives = _parse_body(body)
    except _Problem as exc:
        raise TemplateError([TemplateIssue(position, text, str(exc))]) from None
    return Placeholder(position, text, variable, literal, offsets, directives)


class _Problem(Exception):
    """What is wrong with a placeholder's body (never quoting it)."""


_Parsed = tuple[str | None, str, tuple[Offset, ...], tuple[str, ...] | None]


@lru_cache(maxsize=512)  # a query often repeats the same placeholder
def _parse_body(body: str) -> _Parsed:
    """(variable or None for a literal, the literal, offsets, format); raises _Problem."""
    fail = _Problem
    expression, bar, fmt = _split_format(body)
    tokens = _tokenize(expression, fail)
    if not tokens:
        raise fail("the placeholder is empty; put a variable in it: " + ", ".join(VARIABLES))
    kind, first = tokens[0]
    if kind == "literal":
        if len(tokens) > 1 or bar:
            raise fail("a quoted literal takes no offset and no format")
        return None, first, (), None
    if kind != "name":
        raise fail("a placeholder starts with a variable: " + ", ".join(VARIABLES))
    if first not in VARIABLES:
        raise fail("unknown variable; use one of " + ", ".join(VARIABLES))
    variable_kind = VARIABLES[first]
    offsets = _parse_offsets(first, variable_kind, tokens[1:], fail)
    directives = None
    if bar:
        if variable_kind == "string":
            raise fail(f"{first} is text: a '|' format applies to run_time and run_date only")
        directives = _parse_format(fmt, variable_kind, fail)
    return first, "", offsets, directives


def _split_format(body: str) -> tuple[str, bool, str]:
    # The first "|" outside a quoted literal starts the format.
    in_quote = False
    for i, char in enumerate(body):
        if char == "'":
            in_quote = not in_quote
        elif char == "|" and not in_quote:
            return body[:i], True, body[i + 1 :]
    return body, False, ""


def _tokenize(expression: str, fail: _Fail) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(expression)
    while i < n:
        char = expression[i]
        if char in " \t":
            i += 1
        elif char == "'":
            close = expression.find("'", i + 1)
            if close == -1:
                raise fail("a quoted literal is not closed by '")
            tokens.append(("literal", expression[i + 1 : close]))
            i = close + 1
        elif char.isascii() and (char.isalpha() or char == "_"):
            j = i
            while (
                j < n
                and expression[j].isascii()
                and (expression[j].isalnum() or expression[j] == "_")
            ):
                j += 1
            tokens.append(("name", expression[i:j]))
            i = j
        elif char.isascii() and char.isdigit():
            j = i
            while j < n and expression[j].isascii() and expression[j].isalnum():
                j += 1
            tokens.append(("amount", expression[i:j]))
            i = j
        elif char in "+-":
            tokens.append(("op", char))
            i += 1
        elif expression.startswith("{{", i):
            raise fail("'{{' inside a placeholder")
        else:
            raise fail(f"unexpected character at character {i + 3} of the placeholder")
    return tokens


def _parse_offsets(
    variable: str, kind: Kind, tokens: list[tuple[str, str]], fail: _Fail
) -> tuple[Offset, ...]:
    offsets: list[Offset] = []
    for i in range(0, len(tokens), 2):
        op = tokens[i]
        if op[0] != "op":
            raise fail("expected '+' or '-' and an amount such as 7d after the variable")
        if kind == "string":
            raise fail(f"{variable} is text: offsets apply to run_time and run_date only")
        if i + 1 >= len(tokens) or tokens[i + 1][0] != "amount":
            raise fail(f"'{op[1]}' must be followed by an amount and a unit, such as 7d")
        offsets.append(_parse_amount(variable, kind, op[1], tokens[i + 1][1], fail))
    return tuple(offsets)


def _parse_amount(variable: str, kind: Kind, op: str, token: str, fail: _Fail) -> Offset:
    digits = len(token) - len(token.lstrip("0123456789"))
    number, unit = token[:digits], token[digits:]
    if not unit:
        raise fail("an amount needs a unit: w (weeks), d (days), h (hours) or m (minutes)")
    if unit not in UNITS:
        raise fail("unknown unit; use w (weeks), d (days), h (hours) or m (minutes)")
    if kind == "date" and unit not in DATE_UNITS:
        raise fail(f"{variable} is a date: offsets are in w or d (use run_time for h and m)")
    amount = int(number)
    if amount > MAX_AMOUNT:
        raise fail(f"an amount is at most {MAX_AMOUNT}")
    return Offset(1 if op == "+" else -1, amount, unit)


def _parse_format(fmt: str, kind: Kind, fail: _Fail) -> tuple[str, ...]:
    fmt = fmt.strip(" ")
    if not fmt:
        raise fail("the format after '|' is empty; e.g. | %Y/%m/%d")
    chunks: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%":
            if i + 1 >= len(fmt):
                raise fail("the format ends with a lone %")
            directive = fmt[i + 1]
            if directive not in DIRECTIVES:
                raise fail(
                    f"unsupported format directive %{directive}; use "
                    + " ".join("%" + d for d in DIRECTIVES)
                )
            if kind == "date" and directive in TIME_DIRECTIVES:
                raise fail(f"run_date has no time of day: %{directive} needs run_time")
            if literal:
                chunks.append("".join(literal))
                literal = []
            chunks.append("%" + directive)
            i += 2
            continue
        if char in _FORBIDDEN_IN_FORMAT or not char.isprintable():
            raise fail("a format cannot contain braces, '|', quotes, tabs or line breaks")
        literal.append(char)
        i += 1
    if literal:
        chunks.append("".join(literal))
    return tuple(chunks)


def _format_chunk(value: datetime | date, chunk: str) -> str:
    if len(chunk) != 2 or chunk[0] != "%":
        return chunk
    directive = chunk[1]
    iso = value.isocalendar()
    match directive:
        case "Y":
            return f"{value.year:04d}"
        case "y":
            return f"{value.year % 100:02d}"
        case "m":
            return f"{value.month:02d}"
        case "d":
            return f"{value.day:02d}"
        case "j":
            return f"{value.timetuple().tm_yday:03d}"
        case "G":
            return f"{iso.year:04d}"
        case "V":
            return f"{iso.week:02d}"
        case "u":
            return str(iso.weekday)
        case "a":
            return _DAY_NAMES[value.weekday()][:3]
        case "A":
            return _DAY_NAMES[value.weekday()]
        case "b":
            return _MONTH_NAMES[value.month - 1][:3]
        case "B":
            return _MONTH_NAMES[value.month - 1]
        case "%":
            return "%"
    assert isinstance(value, datetime)  # the parser allows H, M, S on run_time only
    match directive:
        case "H":
            return f"{value.hour:02d}"
        case "M":
            return f"{value.minute:02d}"
        case _:
            return f"{value.second:02d}"


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
