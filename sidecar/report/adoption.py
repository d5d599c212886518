"""The adoption as the operator reads it: `sidecar adopt [--check]`, and the lineages part of
`sidecar status` (text and JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sidecar.volume.adopt import Decision
    from sidecar.volume.tree import Adoption, Rewrite


def render(decisions: Sequence[Decision], findings: Sequence[str]) -> str:
    """Each lineage's decision with what was found, the changes and notes; then the tree's
    problems."""
    lines = []
    for d in decisions:
        lines.append(f"{d.name}: {d.action} — {d.does}")
        lines.append(f"  found:   {d.found}")
        lines.extend(f"  change:  {c}" for c in d.changes)
        lines.extend(f"  note:    {p}" for p in d.problems)
    if findings:
        lines.append("tree:")
        lines.extend(f"  {f}" for f in findings)
    return "\n".join(lines) if lines else "no lineages in the tree yet"


def decision_json(decision: Decision) -> dict[str, Any]:
    d = decision
    return {
        "lineage": d.name,
        "in_domains": d.in_domains,
        "names": list(d.names),
        "found": d.found,
        "action": d.action,
        "does": d.does,
        "changes": list(d.changes),
        "problems": list(d.problems),
        "authenticator": d.authenticator,
        "server": d.server,
        "account": d.pinned_account,
    }


def adoption_json(adoption: Adoption) -> dict[str, Any]:
    """The lineages part of `status --json`."""
    return {
        "lineages": [decision_json(d) for d in adoption.decisions],
        "tree": list(adoption.findings),
    }


def rewrite_text(rewrite: Rewrite) -> str:
    """`sidecar adopt`'s output: the plan, then what was done (or, with --check, would be)."""
    adoption = rewrite.adoption
    plan = render(adoption.decisions, adoption.findings)
    if rewrite.check:
        also = f", {len(rewrite.rebuilt)} rebuilt" if rewrite.rebuilt else ""
        if rewrite.repaired:
            also += f", the files of {len(rewrite.repaired)} lineage(s) repaired"
        tail = f"{rewrite.rewritten} renewal conf(s) would be rewritten{also}; nothing was changed"
        return f"{plan}\n{tail} (--check)"
    backups = ", ".join(p.name for p in rewrite.backups)
    tail = f"{rewrite.rewritten} renewal conf(s) rewritten" + (
        f" (backups: {backups})" if backups else ""
    )
    if rewrite.rebuilt:
        tail += "; rebuilt: " + ", ".join(rewrite.rebuilt)
    if rewrite.repaired:
        tail += "; files repaired: " + ", ".join(rewrite.repaired)
    return f"{plan}\n{tail}"
