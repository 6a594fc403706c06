"""The collaboration file resolved: ids, ARNs and the API shapes of memberships and templates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import config as cfg
from .errors import ResourceNotFoundException
from .params import Declared


@dataclass(frozen=True)
class Membership:
    id: str
    arn: str
    account_id: str
    abilities: frozenset[str]
    display_name: str
    collaboration: Collaboration
    status: str = "ACTIVE"  # MemberStatus (the file's `status`)

    def can(self, ability: str) -> bool:
        return ability in self.abilities

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"

    @property
    def membership_status(self) -> str:
        """GetMembership's MembershipStatus: ACTIVE, or REMOVED once the member left."""
        return "ACTIVE" if self.active else "REMOVED"


@dataclass(frozen=True)
class Template:
    id: str
    arn: str
    name: str
    description: str | None
    sql: str
    parameters: tuple[Declared, ...]
    creator: Membership
    collaboration: Collaboration
    format: str = "SQL"


@dataclass(frozen=True)
class Collaboration:
    id: str
    arn: str
    name: str
    description: str | None
    creator_account_id: str
    analytics_engine: str
    query_log_status: str
    tables: tuple[cfg.Table, ...]
    memberships: dict[str, Membership] = field(default_factory=dict, compare=False)
    templates: dict[str, Template] = field(default_factory=dict, compare=False)

    def membership_of(self, account_id: str) -> Membership | None:
        return next((m for m in self.memberships.values() if m.account_id == account_id), None)


class World:
    """Everything the caller can see, indexed for the operations."""

    def __init__(self, config: cfg.EngineConfig, created: datetime | None = None) -> None:
        self.config = config
        self.region = config.region
        self.account_id = config.accountId
        self.created = created or datetime.now(UTC)
        self.collaborations: dict[str, Collaboration] = {}
        self.memberships: dict[str, Membership] = {}
        self.templates_by_arn: dict[str, Template] = {}
        for c in config.collaborations:
            self._add(c)

    def _add(self, c: cfg.Collaboration) -> None:
        region, collab_id = self.region, cfg.collaboration_id(c)
        creator = c.creatorAccountId or c.members[0].accountId
        collab = Collaboration(
            id=collab_id,
            arn=f"arn:aws:cleanrooms:{region}:{creator}:collaboration/{collab_id}",
            name=c.name,
            description=c.description,
            creator_account_id=creator,
            analytics_engine=c.analyticsEngine,
            query_log_status=c.queryLogStatus,
            tables=tuple(c.tables),
        )
        for m in c.members:
            mid = cfg.membership_id(c, m)
            membership = Membership(
                id=mid,
                arn=f"arn:aws:cleanrooms:{region}:{m.accountId}:membership/{mid}",
                account_id=m.accountId,
                abilities=frozenset(m.abilities),
                display_name=m.displayName or f"Member {m.accountId}",
                collaboration=collab,
                status=m.status,
            )
            collab.memberships[mid] = membership
            self.memberships[mid] = membership
        for t in c.analysisTemplates:
            tid = cfg.template_id(c, t)
            owner = collab.membership_of(t.creatorAccountId or self.account_id)
            assert owner is not None  # the config checked that the creator is a member
            template = Template(
                id=tid,
                arn=f"{owner.arn}/analysistemplate/{tid}",
                name=t.name,
                description=t.description,
                sql=t.sql,
                parameters=tuple(Declared(p.name, p.type, p.defaultValue) for p in t.parameters),
                creator=owner,
                collaboration=collab,
                format=t.format,
            )
            collab.templates[tid] = template
            self.templates_by_arn[template.arn] = template
        self.collaborations[collab_id] = collab

    def caller_memberships(self) -> list[Membership]:
        return [m for m in self.memberships.values() if m.account_id == self.account_id]

    def caller_membership(self, membership_id: str) -> Membership | None:
        """The caller's own membership with that id; another account's is not visible."""
        m = self.memberships.get(membership_id)
        return m if m is not None and m.account_id == self.account_id else None

    def member_collaboration(self, identifier: str) -> Collaboration:
        """A collaboration the caller is a member of; any other is not found, as in the API."""
        collab = self.collaborations.get(identifier)
        if collab is None or collab.membership_of(self.account_id) is None:
            raise ResourceNotFoundException(
                f"Collaboration {identifier} not found",
                resource_id=identifier,
                resource_type="COLLABORATION",
            )
        return collab

    # The API shapes (timestamps are datetimes here; the protocol layer serializes them).

    def membership_shape(self, m: Membership, *, summary: bool = False) -> dict[str, Any]:
        c = m.collaboration
        creator = c.membership_of(c.creator_account_id)
        out: dict[str, Any] = {
            "id": m.id,
            "arn": m.arn,
            "collaborationArn": c.arn,
            "collaborationId": c.id,
            "collaborationCreatorAccountId": c.creator_account_id,
            "collaborationCreatorDisplayName": creator.display_name if creator else "creator",
            "collaborationName": c.name,
            "createTime": self.created,
            "updateTime": self.created,
            "status": m.membership_status,
            "memberAbilities": sorted(m.abilities),
            "paymentConfiguration": {"queryCompute": {"isResponsible": m.can("CAN_QUERY")}},
        }
        if not summary:
            out["queryLogStatus"] = c.query_log_status
        return out

    def member_shape(self, m: Membership) -> dict[str, Any]:
        """A MemberSummary (ListMembers)."""
        return {
            "accountId": m.account_id,
            "status": m.status,
            "displayName": m.display_name,
            "abilities": sorted(m.abilities),
            "createTime": self.created,
            "updateTime": self.created,
            "membershipId": m.id,
            "membershipArn": m.arn,
            "paymentConfiguration": {"queryCompute": {"isResponsible": m.can("CAN_QUERY")}},
        }

    def template_shape(self, t: Template, *, kind: str = "full") -> dict[str, Any]:
        """kind: "full" (AnalysisTemplate), "summary", or "collaboration"."""
        out: dict[str, Any] = {
            "id": t.id,
            "arn": t.arn,
            "collaborationId": t.collaboration.id,
            "collaborationArn": t.collaboration.arn,
            "name": t.name,
            "createTime": self.created,
            "updateTime": self.created,
        }
        if t.description:
            out["description"] = t.description
        if kind in ("full", "summary"):
            out |= {"membershipId": t.creator.id, "membershipArn": t.creator.arn}
        if kind == "summary":
            return out
        if kind == "collaboration":
            out["creatorAccountId"] = t.creator.account_id
        tables = sorted({tb.name for tb in t.collaboration.tables if _mentions(t.sql, tb.name)})
        out |= {
            "schema": {"referencedTables": tables},
            "format": t.format,
            "source": {"text": t.sql},
            "analysisParameters": [
                {"name": p.name, "type": p.type}
                | ({"defaultValue": p.default} if p.default is not None else {})
                for p in t.parameters
            ],
        }
        return out


def _mentions(sql: str, table: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(table)}(?!\w)", sql, re.IGNORECASE) is not None
