"""The layering the deployed code promises: boto3 only in adapters, nothing local deployed."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_only_adapters_import_boto3() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "adapters" not in path.parts
        and any(m == "boto3" or m.startswith("boto3.") for m in imported_modules(path))
    ]
    assert offenders == []


def test_deployed_code_never_imports_the_local_tools() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if any(
            m.split(".")[0] in {"crq_local", "moto", "duckdb", "typer", "rich"}
            for m in imported_modules(path)
        )
    ]
    assert offenders == []


def test_handlers_stay_thin() -> None:
    for name in ("start.py", "track.py"):
        source = (SRC / "handlers" / name).read_text()
        body = [
            line
            for line in source.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert len(body) <= 40, f"handlers/{name} has {len(body)} lines"
        assert "boto3" not in source
