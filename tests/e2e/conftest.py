"""Fixtures of the end-to-end tests: one `crq sandbox` process per test module.

The process runs on free ports, with a temporary working directory so nothing it writes lands
in the repository, and is killed at the end of the module if a test did not stop it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import SandboxProcess, Subscriber

from crq_local.sandbox.consumer import subscribe_queue


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    workdir = tmp_path_factory.mktemp("sandbox-cwd")
    process = SandboxProcess.start("--tick", "1", "--pace", "fast", cwd=workdir)
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture(scope="module")
def subscriber(sandbox: SandboxProcess) -> Subscriber:
    sqs = sandbox.client("sqs")
    queue_url = subscribe_queue(
        sandbox.client("sns"), sqs, sandbox.exports["CRQ_TOPIC_ARN"], "e2e-test-subscriber"
    )
    return Subscriber(sqs, queue_url)
