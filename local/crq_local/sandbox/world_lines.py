"""What the sandbox prints about its collaboration: the ids and ARNs a spec names.

A user writing a spec needs the membership id (`membershipIdentifier`), the analysis template
ARNs (`sqlParameters.analysisTemplateArn`) and, for `outputConfiguration.member`, where the
engine leaves those results; all three come from the collaboration file and are shown here so
nobody has to dig for them.
"""

from __future__ import annotations

from pathlib import Path

from crq_local.engine.world import World


def collaboration_lines(world: World, members_dir: Path) -> list[str]:
    """`# ...` lines: per collaboration, the memberships (yours marked) and template ARNs."""
    lines: list[str] = []
    for collaboration in world.collaborations.values():
        lines.append(
            f"# collaboration {collaboration.name} ({collaboration.analytics_engine}), "
            f"id {collaboration.id}:"
        )
        for membership in collaboration.memberships.values():
            mine = membership.account_id == world.account_id
            abilities = ", ".join(sorted(membership.abilities)) or "no abilities"
            who = "your membership" if mine else f"member {membership.account_id}"
            lines.append(f"#   {who}: {membership.id} ({abilities})")
        for template in collaboration.templates.values():
            lines.append(f"#   analysis template {template.name}: {template.arn}")
    lines.append(
        "# results of outputConfiguration.member land in "
        f"{members_dir}/<account id>/<query id>/result.csv"
    )
    return lines
