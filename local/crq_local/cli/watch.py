"""`crq watch QUERY_ID`: a live display of a protected query until it ends."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError

from crq_local.cli import aws, console
from crq_local.cli.guard import (
    EXIT_FAILED,
    check_ids,
    fail,
    finite_seconds,
    friendly_errors,
    stack_name,
)
from crq_local.cli.status import ledger

ENDED_STATUSES = frozenset({"SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT"})


@friendly_errors
def watch(
    query_id: Annotated[str, typer.Argument(help="The protected query's id.")],
    membership: Annotated[
        str | None, typer.Option(help="Membership id (default: found from the ledger).")
    ] = None,
    stack: Annotated[
        str | None, typer.Option(help="A deployed stack's name.", callback=stack_name)
    ] = None,
    interval: Annotated[
        float,
        typer.Option(help="Seconds between polls.", min=0.2, max=3600, callback=finite_seconds),
    ] = 1.0,
) -> None:
    """Follow a protected query until it ends; exit 0 if it succeeded, 1 otherwise."""
    from rich.live import Live
    from rich.spinner import Spinner

    check_ids(protectedQueryIdentifier=query_id)
    if membership is not None:
        check_ids(protectedQueryIdentifier=query_id, membershipIdentifier=membership)
    cleanrooms = aws.client("cleanrooms")
    membership_id = membership or _find_membership(query_id, stack, cleanrooms)
    started = time.monotonic()
    query: dict[str, Any] = {}
    spinner = Spinner("dots", text="asking Clean Rooms...")
    with Live(spinner, console=console.out, transient=True) as live:
        while True:
            try:
                query = cleanrooms.get_protected_query(
                    membershipIdentifier=membership_id, protectedQueryIdentifier=query_id
                )["protectedQuery"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    fail(f"query {query_id} not found in membership {membership_id}")
                raise
            status_ = query["status"]
            elapsed = time.monotonic() - started
            live.update(Spinner("dots", text=f"{query_id}  {status_}  ({elapsed:.0f} s)"))
            if status_ in ENDED_STATUSES:
                break
            time.sleep(interval)
    _print_query(query)
    if query["status"] != "SUCCESS":
        raise typer.Exit(EXIT_FAILED)


def _find_membership(query_id: str, stack: str | None, cleanrooms: Any) -> str:
    """The membership of a query: from the ledger when it knows the run, else by asking."""
    if stack or os.environ.get("CRQ_TABLE_NAME"):
        run = ledger(stack).find_by_query(query_id)
        if run is not None and run.membership_id:
            return str(run.membership_id)
    memberships = [
        m["id"]
        for page in cleanrooms.get_paginator("list_memberships").paginate(status="ACTIVE")
        for m in page.get("membershipSummaries", [])
    ]
    for membership in memberships:
        try:
            cleanrooms.get_protected_query(
                membershipIdentifier=membership, protectedQueryIdentifier=query_id
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                "ResourceNotFoundException",
                "AccessDeniedException",
                "ValidationException",
            ):
                continue
            raise
        return str(membership)
    fail(f"no membership of this account knows query {query_id}; name it with --membership")


def _print_query(query: dict[str, Any]) -> None:
    out = console.out
    style = "green" if query["status"] == "SUCCESS" else "red"
    out.print(f"[bold {style}]{query['status']}[/]  query {query['id']}")
    stats = query.get("statistics", {})
    if "totalDurationInMillis" in stats:
        units = stats.get("billedResourceUtilization", {}).get("units")
        extra = f", {units:g} CRPU units" if units is not None else ""
        out.print(f"  took {stats['totalDurationInMillis'] / 1000:.1f} s{extra}")
    output = query.get("result", {}).get("output", {})
    location = output.get("s3", {}).get("location") or output.get("distribute", {}).get(
        "s3", {}
    ).get("location")
    if location:
        out.print(f"  results: {location}", markup=False)
    members = output.get("memberList") or output.get("distribute", {}).get("memberList")
    if members:
        out.print("  results sent to " + ", ".join(m["accountId"] for m in members))
    if query.get("error"):
        out.print(f"  {query['error'].get('code')}: {query['error'].get('message')}", markup=False)
