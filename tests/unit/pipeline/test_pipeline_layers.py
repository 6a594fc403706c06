"""The layering rule import-linter cannot express: the handlers stay thin.

Who may import whom (boto3 only in adapters, nothing local deployed, the layers) is checked by
`lint-imports` (`make lint`), from the contracts in pyproject.toml's [tool.importlinter].
"""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"


def test_handlers_stay_thin() -> None:
    for name in ("start.py", "track.py"):
        source = (SRC / "handlers" / name).read_text()
        body = [
            line
            for line in source.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert len(body) <= 40, f"handlers/{name} has {len(body)} lines"
