"""The shell lines the sandbox prints on start, and reading them back (demo, tests, scripts)."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

# Printed together on one line, as in the README, because they always go together.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
READY_MARKER = "# crq sandbox ready"


def export_lines(variables: Mapping[str, str]) -> list[str]:
    """`export NAME=value` lines, quoted for a POSIX shell, credentials grouped on one line."""
    lines: list[str] = []
    credentials = [name for name in CREDENTIAL_VARIABLES if name in variables]
    for name, value in variables.items():
        if name in CREDENTIAL_VARIABLES:
            if name == credentials[0]:
                pairs = " ".join(f"{n}={shlex.quote(variables[n])}" for n in credentials)
                lines.append(f"export {pairs}")
            continue
        lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def parse_exports(lines: Iterable[str]) -> dict[str, str]:
    """The variables of every `export A=1 [B=2 ...]` line; other lines are ignored."""
    variables: dict[str, str] = {}
    for line in lines:
        words = shlex.split(line, comments=True) if line.lstrip().startswith("export ") else []
        for word in words[1:]:
            name, sep, value = word.partition("=")
            if sep:
                variables[name] = value
    return variables


AWS_CONFIG_TEXT = """\
# Written by `crq sandbox` for the shells that paste its export lines (AWS_CONFIG_FILE);
# deleted when the sandbox stops. Your own ~/.aws/config is neither read nor changed.
[default]
region = {region}
# AWS CLI v1 would fetch http:// values such as --queue-url as parameter files.
cli_follow_urlparam = false
"""


def write_aws_config(directory: Path, region: str) -> Path:
    """The sandbox's own AWS config file in `directory` (exported as AWS_CONFIG_FILE)."""
    path = directory / "config"
    path.write_text(AWS_CONFIG_TEXT.format(region=region), encoding="utf-8")
    return path
