"""Fixtures that drive the local engine only through boto3, in two modes:

- `inprocess`: moto's `mock_aws` for S3, SQS and EventBridge, and the engine installed as a
  botocore before-send handler (no port);
- `http`: a moto server and the engine's server on free loopback ports, clients pointed at
  them with AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_CLEANROOMS.

`harness` is one test's own engine; `shared` is one engine per module and mode, for the many
cases that only send a request and read its answer (they never look beyond their own query).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from crq_local.engine import Timings
from crq_local.engine.testing import Harness, MakeHarness, moto_server, open_harness

MODES = ["inprocess", "http"]


@pytest.fixture(scope="module", autouse=True)
def aws_credentials() -> Iterator[None]:
    """Fake credentials and no endpoint overrides, restored after each module."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLEANROOMS"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield


@pytest.fixture(scope="session")
def aws_url() -> Iterator[str]:
    """One moto server per test process (xdist workers each get their own port)."""
    with moto_server() as url:
        yield url


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_harness(
    mode: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[MakeHarness]:
    """Build a harness for a world (the example by default) in the test's mode."""
    with ExitStack() as stack:

        def make(world: dict[str, Any] | None = None, timings: Timings | None = None) -> Harness:
            return open_harness(
                stack,
                mode,
                monkeypatch,
                aws_url=lambda: str(request.getfixturevalue("aws_url")),
                members_dir=tmp_path / "members",
                world=world,
                timings=timings,
            )

        yield make


@pytest.fixture
def harness(make_harness: MakeHarness) -> Harness:
    """The example world, for this test alone."""
    return make_harness()


@pytest.fixture(scope="module", params=MODES)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    """The example world, shared by the tests of a module (one engine per mode)."""
    with ExitStack() as stack, pytest.MonkeyPatch.context() as env:
        yield open_harness(
            stack,
            str(request.param),
            env,
            aws_url=lambda: str(request.getfixturevalue("aws_url")),
            members_dir=tmp_path_factory.mktemp("members"),
        )
