"""The spec store's contract (crq.ports.SpecStore): FakeSpecs, and SpecStore on the stack's
versioned specs bucket."""

from __future__ import annotations

import pytest
from contract_support import Specs

from crq.errors import SpecUnreadable
from crq.spec.limits import MAX_SPEC_BYTES, too_large

KEY = "specs/daily.yaml"


def test_the_current_version_is_read_with_its_version_and_etag(specs: Specs) -> None:
    specs.put(KEY, b"name: one\n")
    latest = specs.put(KEY, b"name: two\n")
    got = specs.store.get_spec(specs.bucket, KEY, None)
    assert (got.data, got.size, got.version_id) == (b"name: two\n", 10, latest)
    assert got.etag and not got.etag.startswith('"')


def test_an_older_version_is_read_when_asked_for(specs: Specs) -> None:
    first = specs.put(KEY, b"name: one\n")
    specs.put(KEY, b"name: two\n")
    got = specs.store.get_spec(specs.bucket, KEY, first)
    assert (got.data, got.version_id) == (b"name: one\n", first)


def test_a_missing_object_or_version_is_unreadable(specs: Specs) -> None:
    with pytest.raises(SpecUnreadable):
        specs.store.get_spec(specs.bucket, "specs/missing.yaml", None)
    specs.put(KEY, b"name: one\n")
    with pytest.raises(SpecUnreadable):
        specs.store.get_spec(specs.bucket, KEY, "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")


def test_a_spec_at_the_size_limit_is_read_and_one_past_it_is_refused(specs: Specs) -> None:
    at_limit = b"#" * MAX_SPEC_BYTES
    specs.put(KEY, at_limit)
    assert specs.store.get_spec(specs.bucket, KEY, None).size == MAX_SPEC_BYTES
    specs.put(KEY, at_limit + b"#")
    with pytest.raises(SpecUnreadable) as refused:
        specs.store.get_spec(specs.bucket, KEY, None)
    assert refused.value.reason == too_large(MAX_SPEC_BYTES + 1)
