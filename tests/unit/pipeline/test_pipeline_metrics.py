"""Each metric crq emits, as CloudWatch EMF on stdout (captured the Powertools-documented way)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from pipeline_fakes import T0

from crq.ledger import Outcome, RunEvent
from crq.metrics import MetricName, PowertoolsRunMetrics


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Metrics]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "crq")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "crq")
    emf = Metrics()
    emf.clear_metrics()
    yield emf
    emf.clear_metrics()


def emitted(emf: Metrics, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    emf.flush_metrics()
    blob = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    directive = blob["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "crq" and ["service"] in directive["Dimensions"]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    return {name: (blob[name], units[name]) for name in units}


def test_counts(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    recorder = PowertoolsRunMetrics(metrics)
    recorder.query_started()
    recorder.query_started()
    recorder.start_queued()
    recorder.query_retried()
    recorder.notification_published()
    assert emitted(metrics, capsys) == {
        MetricName.QUERIES_STARTED: ([1.0, 1.0], "Count"),
        MetricName.STARTS_QUEUED: ([1.0], "Count"),
        MetricName.QUERIES_RETRIED: ([1.0], "Count"),
        MetricName.NOTIFICATIONS_PUBLISHED: ([1.0], "Count"),
    }


def test_an_ended_query_reports_its_duration_and_crpu_units(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    PowertoolsRunMetrics(metrics).run_ended(
        Outcome(
            event=RunEvent.QUERY_SUCCEEDED,
            ended_at=T0,
            statistics={
                "totalDurationInMillis": 61000,
                "billedResourceUtilization": {"units": 0.25},
            },
        )
    )
    assert emitted(metrics, capsys) == {
        MetricName.QUERIES_SUCCEEDED: ([1.0], "Count"),
        MetricName.QUERY_DURATION: ([61000.0], "Milliseconds"),
        MetricName.CRPU_UNITS: ([0.25], "None"),
    }


@pytest.mark.parametrize(
    "event", ["QUERY_FAILED", "QUERY_CANCELLED", "QUERY_TIMED_OUT", "START_FAILED"]
)
def test_every_other_end_counts_as_failed(
    event: str, metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    PowertoolsRunMetrics(metrics).run_ended(Outcome(event=RunEvent(event), ended_at=T0))
    assert emitted(metrics, capsys) == {MetricName.QUERIES_FAILED: ([1.0], "Count")}


def test_a_rejected_spec(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    PowertoolsRunMetrics(metrics).run_ended(Outcome(event=RunEvent.SPEC_REJECTED, ended_at=T0))
    assert emitted(metrics, capsys) == {MetricName.SPECS_REJECTED: ([1.0], "Count")}
