"""Failures a user can cause are one clear line and an exit code, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crq_local.cli.app import app

runner = CliRunner()

SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "CRQ_TABLE_NAME": "crq-sandbox-runs-table",
}


# Bound and never listening: a connection is refused, and no other test (a sandbox on port 0
# in another xdist worker) can be given the port meanwhile, as a released port could be.
_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port nothing listens on, held for the rest of the test session."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


@pytest.fixture
def no_aws_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials, config or instance metadata from the machine running the tests."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "CRQ_TABLE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def assert_clean_failure(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.mark.usefixtures("no_aws_profile")
def test_status_when_the_sandbox_is_not_running() -> None:
    env = {**SANDBOX_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"}

    result = runner.invoke(app, ["status"], env=env)

    assert_clean_failure(result, 2, "cannot reach", "is the sandbox running?", "crq sandbox")


@pytest.mark.usefixtures("no_aws_profile")
def test_watch_when_the_engine_is_not_running() -> None:
    env = {
        **SANDBOX_ENV,
        "AWS_ENDPOINT_URL_CLEANROOMS": f"http://127.0.0.1:{closed_port()}",
    }
    del env["CRQ_TABLE_NAME"]

    result = runner.invoke(
        app,
        [
            "watch",
            "0f0e0d0c-0b0a-4908-8706-050403020100",
            "--membership",
            "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10",
        ],
        env=env,
    )

    assert_clean_failure(result, 2, "cannot reach", "is the sandbox running?")


@pytest.mark.usefixtures("no_aws_profile")
def test_status_without_credentials() -> None:
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "CRQ_TABLE_NAME": "runs",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
    }

    result = runner.invoke(app, ["status"], env=env)

    assert_clean_failure(result, 2, "no AWS credentials", "export lines")


@pytest.mark.usefixtures("no_aws_profile")
def test_status_without_a_table_says_where_to_get_one() -> None:
    result = runner.invoke(app, ["status"], env={"AWS_DEFAULT_REGION": "us-east-1"})

    assert_clean_failure(result, 2, "CRQ_TABLE_NAME is not set", "--stack")


def test_engine_refuses_a_malformed_collaboration_file(tmp_path: Path) -> None:
    config = tmp_path / "collaboration.yaml"
    config.write_text('accountId: "111111111111"\ncollaborations: []\n')

    result = runner.invoke(app, ["engine", "--config", str(config), "--port", "0"])

    assert_clean_failure(result, 2, str(config), "collaborations")


def test_engine_with_a_missing_collaboration_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["engine", "--config", str(tmp_path / "none.yaml"), "--port", "0"])

    assert_clean_failure(result, 2, "none.yaml")


def test_engine_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    config = Path(__file__).resolve().parents[3] / "examples" / "collaboration.yaml"

    result = runner.invoke(
        app, ["engine", "--config", str(config), "--host", "0.0.0.0", "--port", "0"]
    )

    assert_clean_failure(result, 2, "loopback")


def test_sandbox_refuses_a_malformed_collaboration_file(tmp_path: Path) -> None:
    config = tmp_path / "collaboration.yaml"
    config.write_text("region: [not, a, region]\n")

    result = runner.invoke(app, ["sandbox", "--config", str(config), "--port", "0"])

    assert_clean_failure(result, 2, str(config))


def test_sandbox_reports_a_port_in_use() -> None:
    config = Path(__file__).resolve().parents[3] / "examples" / "collaboration.yaml"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = runner.invoke(app, ["sandbox", "--config", str(config), "--port", str(port)])

    assert_clean_failure(result, 2, f"127.0.0.1:{port}", "--port")
