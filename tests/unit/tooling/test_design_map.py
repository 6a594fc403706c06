"""docs/design.md's layout names every module, and names no module that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = (ROOT / "src", ROOT / "local" / "crq_local")


def _layout() -> str:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    return text.split("## Layout", 1)[1].split("\n## ", 1)[0]


def _modules() -> set[str]:
    return {
        path.name
        for package in PACKAGES
        for path in package.rglob("*.py")
        if path.name != "__main__.py" and "__pycache__" not in path.parts
    }


def test_every_module_has_a_line_in_the_layout() -> None:
    named = set(re.findall(r"[\w]+\.py", _layout()))
    missing = sorted(_modules() - named - {"__init__.py"})
    assert not missing, f"docs/design.md's layout does not name: {missing}"


def test_the_layout_names_no_module_that_is_gone() -> None:
    named = set(re.findall(r"(?<![\w/.])([a-z_]+\.py)\b", _layout()))
    extra = {"run.py", "latency.py", "generate_schemas.py"}  # bench/ and scripts/
    gone = sorted(named - _modules() - extra)
    assert not gone, f"docs/design.md's layout names modules that do not exist: {gone}"
