"""Every command, driven with hostile arguments: one clear line, a non-zero exit, no traceback.

The console script's own entry point (`crq_local.cli.app.main`) runs here, in-process, so what is
checked is exactly what a shell sees: stderr, stdout and the exit code.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from crq_local.cli import guard
from crq_local.cli.app import app, main

ROOT = Path(__file__).resolve().parents[3]
SPEC = str(ROOT / "examples" / "specs" / "channel-mix.yaml")
COLLABORATION = str(ROOT / "examples" / "collaboration.yaml")
QUERY = "0f0e0d0c-0b0a-4908-8706-050403020100"
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"

# (arguments, a fragment the one line must hold)
HOSTILE: list[tuple[list[str], str]] = [
    (["watch", "not-a-uuid"], "'not-a-uuid' is not a query id"),
    (["watch", ""], "'' is not a query id"),
    (["watch"], "Missing argument"),
    (["watch", QUERY, "--membership", "x"], "'x' is not a membership id"),
    (["watch", QUERY, "--membership", MEMBERSHIP, "--interval", "nan"], "--interval"),
    (["watch", QUERY, "--membership", MEMBERSHIP, "--interval", "-1"], "--interval"),
    (["watch", QUERY, "--membership", MEMBERSHIP], "cannot reach"),
    (["watch", QUERY, "--stack", "../etc"], "is not a stack name"),
    (["sandbox", "--port", "99999"], "--port"),
    (["sandbox", "--port", "-1"], "--port"),
    (["sandbox", "--engine-port", "65536"], "--engine-port"),
    (["sandbox", "--tick", "nan"], "--tick"),
    (["sandbox", "--tick", "inf"], "--tick"),
    (["sandbox", "--tick", "0"], "--tick"),
    (["sandbox", "--pace", "warp"], "--pace"),
    (["sandbox", "--config", ""], "."),
    (["sandbox", "--config", "/nonexistent/collab.yaml"], "/nonexistent/collab.yaml"),
    (["sandbox", "--config", COLLABORATION, "--port", "0", "--template", ""], "template"),
    (["sandbox", "--config", COLLABORATION, "--port", "0", "--log-file", "/"], "/"),
    (["engine"], "Missing option"),
    (["engine", "--config", ""], "."),
    (["engine", "--config", "/etc/passwd", "--port", "0"], "/etc/passwd"),
    (["engine", "--config", COLLABORATION, "--port", "99999"], "--port"),
    (["engine", "--config", COLLABORATION, "--host", "", "--port", "0"], ""),
    (["engine", "--config", COLLABORATION, "--host", "example.com", "--port", "0"], "loopback"),
    (["demo", "--examples", "/nonexistent"], "/nonexistent"),
    (["demo", "--examples", ""], "demo.toml"),
    (["demo", "--pace", ""], "--pace"),
    (["status", "--limit", "0"], "--limit"),
    (["status", "--limit", "99999999999999999999"], "--limit"),
    (["status", "--limit", "x"], "--limit"),
    (["status", "--stack", ""], "is not a stack name"),
    (["status", "--stack", "a" * 300], "is not a stack name"),
    (["status"], "cannot reach"),
    (["render"], "Missing argument"),
    (["render", SPEC, "--at", "yesterday-ish"], "is not an ISO 8601 time"),
    (["render", SPEC, "--at", ""], "is not an ISO 8601 time"),
    (["render", SPEC, "--trigger", "cron"], "--trigger"),
    (["render", "/dev/zero"], "not a regular file"),
    (["render", "/nonexistent.yaml"], "no such file"),
    (["validate"], "Missing argument"),
    (["validate", "--online", "--stack", "", SPEC], "is not a stack name"),
    (["validate", "--online", SPEC], "CRQ_MEMBERSHIP_IDS is not set"),
    (["nope"], "No such command"),
    ([""], "No such command"),
    (["--no-such-option"], "No such option"),
]


# Bound and never listening: a connection is refused, and no other test (a sandbox on port 0
# in another xdist worker) can be given the port meanwhile, as a released port could be.
_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port nothing listens on, held for the rest of the test session."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def nothing_listening(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials that work nowhere, endpoints where nothing listens, no machine config."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_ENDPOINT_URL_CLEANROOMS": f"http://127.0.0.1:{closed_port()}",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "CRQ_TABLE_NAME": "crq-sandbox-runs-table",
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "CRQ_MEMBERSHIP_IDS",
        guard.DEBUG_VARIABLE,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def run_crq(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def assert_one_clear_line(code: int, out: str, err: str, fragment: str) -> None:
    assert code not in (0, guard.EXIT_BUG), (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert fragment in lines[0]


@pytest.mark.parametrize(("args", "fragment"), HOSTILE, ids=[" ".join(a) for a, _ in HOSTILE])
def test_a_hostile_argument_gets_one_clear_line(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_crq(args, capsys)

    assert_one_clear_line(code, out, err, fragment)


def command_paths() -> list[list[str]]:
    """Every command, subcommands of groups included (new commands are covered here too)."""
    from typer.main import get_command

    def walk(command: object, path: list[str]) -> list[list[str]]:
        subcommands = getattr(command, "commands", None)
        if not subcommands:
            return [path]
        return [p for name, sub in subcommands.items() for p in walk(sub, [*path, name])]

    return walk(get_command(app), [])


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
@pytest.mark.parametrize("hostile", [["--no-such-option"], ["\x1b[31m", "--port", "99999999"]])
def test_every_command_refuses_nonsense_in_one_line(
    path: list[str], hostile: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_crq([*path, *hostile], capsys)

    assert_one_clear_line(code, out, err, "")


def test_an_unexpected_error_is_one_line_asking_for_a_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a command that fails in a way no handler foresaw
    from crq_local.cli import validate

    def broken(_: object) -> bytes:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(validate, "read_spec", broken)

    # When it runs
    code, out, err = run_crq(["validate", SPEC], capsys)

    # Then one line says so, and the exit code says it is crq's fault
    assert code == guard.EXIT_BUG
    assert err.strip().splitlines() == [
        "error: unexpected ZeroDivisionError: boom. This is a bug in crq: please report it with "
        "the command you ran (CRQ_DEBUG=1 shows the traceback)."
    ]
    assert "Traceback" not in out + err
