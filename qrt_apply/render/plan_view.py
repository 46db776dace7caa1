"""Text, markdown and JSON views of a Plan."""

from __future__ import annotations

import json
from typing import Any

from qrt_apply.plan.model import Action, Plan

__all__ = ["render_plan"]

_SYMBOL = {
    "create": "+",
    "update": "~",
    "set-visibility": "~",
    "delete": "-",
    "forget": "-",
    "run": "+",
    "rerun": "-/+",
    "wait": "<=",
}
_SUMMARY = (
    ("create", "to create"),
    ("update", "to update"),
    ("set-visibility", "to change visibility"),
    ("delete", "to delete"),
    ("forget", "to forget"),
    ("run", "to run"),
    ("rerun", "to rerun"),
    ("wait", "to wait for"),
)


def _short(value: Any) -> str:
    text = (
        json.dumps(value, sort_keys=True, ensure_ascii=False)
        if not isinstance(value, str)
        else value
    )
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return text if len(text) <= 72 else text[:69] + "..."


def summary_line(plan: Plan) -> str:
    counts = plan.counts()
    parts = [f"{counts[kind]} {words}" for kind, words in _SUMMARY if counts.get(kind)]
    return "Plan: " + ", ".join(parts) + "."


def _text_action(action: Action) -> list[str]:
    drift = " [drift]" if action.drift else ""
    lines = [f"  {_SYMBOL[action.kind]:>3} {action.address}  {action.kind}: {action.reason}{drift}"]
    for change in action.changes:
        if change.field == "visibility":
            continue
        lines.append(f"        ~ {change.field}: {_short(change.old)} → {_short(change.new)}")
    return lines


def _environment_line(plan: Plan) -> str:
    target = plan.target or {}
    where = " ".join(str(target[k]) for k in ("channel", "url", "instance") if target.get(k))
    return f"Environment: {plan.environment}" + (f" (target {where})" if where else "")


def _text(plan: Plan) -> str:
    lines: list[str] = []
    if plan.environment:
        lines.append(_environment_line(plan))
    if not plan.refreshed:
        lines.append("(not refreshed: the lockfile is taken as the runtime's state)")
    if plan.drift:
        lines.append("Changed on the runtime outside qrt (drift): " + ", ".join(plan.drift))
    if not plan.has_changes:
        lines.append("No changes. The runtime matches the manifests.")
    else:
        lines.append("qrt will perform the following actions:")
        lines.append("")
        for action in plan.actions:
            lines.extend(_text_action(action))
        lines.append("")
        lines.append(summary_line(plan))
    if plan.orphans:
        lines.append("")
        lines.append("In qrt.lock but gone from the manifests (use --prune to remove):")
        lines.extend(f"  ? {address}" for address in plan.orphans)
    return "\n".join(lines) + "\n"


def _markdown(plan: Plan) -> str:
    title = (
        f"### qrt plan: environment `{plan.environment}`" if plan.environment else "### qrt plan"
    )
    lines = [title, ""]
    if not plan.has_changes:
        lines.append("**No changes.** The runtime matches the manifests.")
    else:
        lines.append(f"**{summary_line(plan)}**")
        lines.append("")
        lines.append("| | address | action | why |")
        lines.append("|---|---|---|---|")
        for action in plan.actions:
            why = action.reason + (" (drift)" if action.drift else "")
            lines.append(
                f"| `{_SYMBOL[action.kind]}` | `{action.address}` | {action.kind} | {why} |"
            )
        changed = [a for a in plan.actions if a.changes]
        if changed:
            lines.extend(["", "<details><summary>Field changes</summary>", "", "```diff"])
            for action in changed:
                lines.append(f"# {action.address}")
                for change in action.changes:
                    lines.append(f"- {change.field}: {_short(change.old)}")
                    lines.append(f"+ {change.field}: {_short(change.new)}")
            lines.extend(["```", "", "</details>"])
    if plan.drift:
        lines.extend(["", "Drift: " + ", ".join(f"`{a}`" for a in plan.drift)])
    if plan.orphans:
        lines.extend(
            [
                "",
                "Orphaned (in qrt.lock, gone from the manifests): "
                + ", ".join(f"`{a}`" for a in plan.orphans),
            ]
        )
    return "\n".join(lines) + "\n"


def render_plan(plan: Plan, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(plan.to_json(), sort_keys=True, indent=2) + "\n"
    if fmt == "markdown":
        return _markdown(plan)
    return _text(plan)
