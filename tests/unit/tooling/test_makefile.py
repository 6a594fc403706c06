"""The Makefile as a newcomer meets it: any Python >= 3.11, and failed tests named last."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PYENV = Path("/root/.pyenv/versions")
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def make(
    *args: str, path: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Only what PATH holds: make's own path is absolute, so no other python sneaks in.
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHON", "LAMBDA_PYTHON", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }
    return subprocess.run(
        [str(MAKE), "-s", "-C", str(ROOT), *args],
        env={**base, "PATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def only(tmp_path: Path, *pythons: Path) -> str:
    """A PATH directory holding exactly these interpreters (and bash, for make's SHELL)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for python in pythons:
        (bin_dir / python.name).symlink_to(python)
    return str(bin_dir)


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_a_machine_with_only_a_newer_python_finds_it(tmp_path: Path, version: str) -> None:
    found = sorted(PYENV.glob(f"{version}.*/bin/python{version}"))
    if not found:
        pytest.skip(f"no python{version} under {PYENV}")

    shown = make("python", path=only(tmp_path, found[0]))

    assert shown.returncode == 0, shown.stderr
    assert f"PYTHON=python{version} ({version}." in shown.stdout


def test_python3_is_accepted_when_it_is_new_enough(tmp_path: Path) -> None:
    found = sorted(PYENV.glob("3.12.*/bin/python3.12"))
    if not found:
        pytest.skip(f"no python3.12 under {PYENV}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(found[0])

    shown = make("python", path=str(bin_dir))

    assert shown.returncode == 0, shown.stderr
    assert "PYTHON=python3 (3.12." in shown.stdout


def test_no_suitable_python_is_said_clearly(tmp_path: Path) -> None:
    old = sorted(PYENV.glob("3.10.*/bin/python3.10"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if old:  # a python3 too old to use
        (bin_dir / "python3").symlink_to(old[0])

    shown = make("install", path=str(bin_dir))

    assert shown.returncode != 0
    assert "crq needs Python 3.11 or newer" in shown.stderr
    assert "make PYTHON=" in shown.stderr
    assert "command not found" not in shown.stderr


def test_a_named_python_too_old_is_refused(tmp_path: Path) -> None:
    old = sorted(PYENV.glob("3.10.*/bin/python3.10"))
    if not old:
        pytest.skip(f"no python3.10 under {PYENV}")

    shown = make("python", f"PYTHON={old[0]}", path=only(tmp_path))

    assert shown.returncode != 0
    assert "is Python 3.10" in shown.stderr
    assert "crq needs 3.11 or newer" in shown.stderr


def test_make_test_names_the_failed_tests_in_its_last_lines(tmp_path: Path) -> None:
    # Given a suite with one failing test among passing ones
    suite = tmp_path / "test_sample.py"
    suite.write_text(
        "def test_fine():\n    assert True\n\n"
        "def test_broken_on_purpose():\n    assert 1 == 2\n\n"
        "def test_also_fine():\n    assert True\n"
    )
    log = tmp_path / "pytest-output.log"

    # When make runs it as `make test` runs the suite
    ran = make(
        "pytest",
        "PYTEST_WORKERS=0",
        f"PYTEST_ARGS={suite} -p no:cacheprovider -p no:randomly",
        f"PYTEST_LOG={log}",
        path=os.environ["PATH"],
    )

    # Then it fails, and its last lines name the failed test
    assert ran.returncode != 0
    last = ran.stdout.strip().splitlines()[-2:]
    assert last[0].startswith("make test: pytest exited 1; failed tests:"), ran.stdout
    assert "test_sample.py::test_broken_on_purpose" in last[1]
