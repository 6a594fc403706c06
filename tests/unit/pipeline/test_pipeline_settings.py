"""Settings: every variable of design.md, validated once, and a clear failure when missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crq.errors import ConfigError
from crq.settings import Settings

ENV = {
    "CRQ_TABLE_NAME": "runs",
    "CRQ_TOPIC_ARN": "arn:aws:sns:us-east-1:111111111111:crq",
    "CRQ_SPECS_BUCKET": "specs",
    "POWERTOOLS_SERVICE_NAME": "crq",
    "POWERTOOLS_METRICS_NAMESPACE": "crq",
}


def test_defaults() -> None:
    settings = Settings.from_env(ENV)
    assert (settings.table_name, settings.specs_prefix) == ("runs", "specs/")
    assert (settings.default_max_runtime_minutes, settings.run_retention_days) == (60, 90)
    assert settings.membership_query_cap == 5


def test_every_value_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            **ENV,
            "CRQ_SPECS_PREFIX": "in/",
            "CRQ_DEFAULT_MAX_RUNTIME_MINUTES": "15",
            "CRQ_RUN_RETENTION_DAYS": "7",
            "CRQ_MEMBERSHIP_QUERY_CAP": "3",
            "POWERTOOLS_LOG_LEVEL": "DEBUG",
        }
    )
    assert (settings.specs_prefix, settings.default_max_runtime_minutes) == ("in/", 15)
    assert (settings.run_retention_days, settings.membership_query_cap) == (7, 3)
    assert settings.log_level == "DEBUG"


def test_a_missing_variable_is_named() -> None:
    env = {k: v for k, v in ENV.items() if k != "CRQ_TOPIC_ARN"}
    with pytest.raises(ConfigError, match="CRQ_TOPIC_ARN is not set"):
        Settings.from_env(env)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**ENV, "CRQ_TABLE_NAME": "", "CRQ_MEMBERSHIP_QUERY_CAP": "many"})
    assert "CRQ_TABLE_NAME is not set" in str(caught.value)
    assert "CRQ_MEMBERSHIP_QUERY_CAP" in str(caught.value)


def test_a_prefix_must_be_a_folder() -> None:
    with pytest.raises(ConfigError, match="CRQ_SPECS_PREFIX"):
        Settings.from_env({**ENV, "CRQ_SPECS_PREFIX": "specs"})


def test_settings_cover_every_variable_of_the_design() -> None:
    design = (Path(__file__).resolve().parents[3] / "docs" / "design.md").read_text()
    section = design.split("## Environment of the functions", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`((?:CRQ|POWERTOOLS)_[A-Z_]+)`", section))
    assert documented == set(Settings.env_names().values())
