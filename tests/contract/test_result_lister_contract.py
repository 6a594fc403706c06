"""The result lister's contract (crq.ports.ResultLister): FakeResults, and ResultLister on a
result bucket of the stack's S3."""

from __future__ import annotations

import pytest
from contract_support import Results

from crq.errors import ResultsUnavailable
from crq.ledger import ResultObject


def location(results: Results, prefix: str = "weekly/q-1/") -> str:
    return f"s3://{results.bucket}/{prefix}"


def test_the_files_under_a_location_are_listed_in_key_order_with_their_sizes(
    results: Results,
) -> None:
    here = location(results)
    results.put(here + "result/part-1.csv", 20)
    results.put(here + "result/part-0.csv", 10)
    results.put(location(results, "weekly/q-2/") + "part-0.csv", 5)  # another query's
    results.put(location(results, "other/") + "part-0.csv", 5)
    found, more = results.lister.list_objects(here, 500)
    assert found == [
        ResultObject(uri=here + "result/part-0.csv", size=10),
        ResultObject(uri=here + "result/part-1.csv", size=20),
    ]
    assert more is False


def test_folder_markers_are_not_results(results: Results) -> None:
    here = location(results)
    results.put(here + "result/", 0)
    results.put(here + "result/part-0.csv", 3)
    found, _ = results.lister.list_objects(here, 500)
    assert [o.uri for o in found] == [here + "result/part-0.csv"]


def test_at_most_limit_files_are_listed_and_the_rest_is_said(results: Results) -> None:
    here = location(results)
    for i in range(3):
        results.put(here + f"part-{i}.csv", i)
    assert results.lister.list_objects(here, 3) == (
        [ResultObject(uri=here + f"part-{i}.csv", size=i) for i in range(3)],
        False,
    )
    found, more = results.lister.list_objects(here, 2)
    assert [o.uri for o in found] == [here + "part-0.csv", here + "part-1.csv"]
    assert more is True


def test_a_location_with_nothing_written_lists_nothing(results: Results) -> None:
    assert results.lister.list_objects(location(results, "never/written/"), 500) == ([], False)


def test_a_bucket_that_does_not_exist_makes_the_results_unavailable(results: Results) -> None:
    with pytest.raises(ResultsUnavailable):
        results.lister.list_objects(f"s3://{results.missing_bucket}/weekly/", 500)
