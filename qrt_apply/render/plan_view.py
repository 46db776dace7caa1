"""Text, markdown and JSON views of a Plan."""

from __future__ import annotations

import json
from typing import Any

import click

from qrt_apply.plan.model import Action, Plan
from qrt_apply.render.plan_markdown import render_markdown

__all__ = ["render_plan"]

_SYMBOL = {
    "move": "->",
    "create": "+",
    "update": "~",
    "set-visibility": "~",
    "delete": "-",
    "forget": "-",
    "run": "+",
    "rerun": "-/+",
    "wait": "<=",
}
# Terraform's colours: create green, update yellow, destroy red, replace magenta, read cyan.
_COLOR = {
    "create": "green",
    "run": "green",
    "update": "yellow",
    "set-visibility": "yellow",
    "delete": "red",
    "forget": "red",
    "rerun": "magenta",
    "wait": "cyan",
    "move": "blue",
}
_SUMMARY = (
    ("move", "to move"),
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


def _text_action(action: Action, color: bool) -> list[str]:
    drift = " [drift]" if action.drift else ""
    symbol = f"{_SYMBOL[action.kind]:>3}"
    if color:
        symbol = click.style(symbol, fg=_COLOR[action.kind], bold=True)
    lines = [f"  {symbol} {action.address}  {action.kind}: {action.reason}{drift}"]
    for change in action.changes:
        if change.field == "visibility":
            continue
        lines.append(f"        ~ {change.field}: {_short(change.old)} → {_short(change.new)}")
    return lines


def _text(plan: Plan, color: bool = False) -> str:
    lines: list[str] = []
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
            lines.extend(_text_action(action, color))
        lines.append("")
        lines.append(summary_line(plan))
    if plan.orphans:
        lines.append("")
        lines.append("In qrt.lock but gone from the manifests (use --prune to remove):")
        lines.extend(f"  ? {address}" for address in plan.orphans)
    if plan.kept:
        lines.append("")
        lines.append(
            "Gone from the manifests, kept on the runtime (prune: false); "
            "`qrt forget ADDR` stops tracking it:"
        )
        lines.extend(f"  = {address}" for address in plan.kept)
    return "\n".join(lines) + "\n"


def render_plan(
    plan: Plan, fmt: str = "text", *, env: str | None = None, color: bool = False
) -> str:
    """``plan`` as ``text``, ``json`` or ``markdown``; ``env`` names the environment planned for
    (markdown: in the title and the hidden marker that lets a bot update its earlier comment);
    ``color`` styles the text view's symbols (the caller decides: a terminal, and neither
    ``NO_COLOR`` nor ``--no-color``). ``env`` defaults to the one the plan was made for."""
    env = env or plan.environment
    if fmt == "json":
        body = plan.to_json()
        body["environment"] = env
        return json.dumps(body, sort_keys=True, indent=2) + "\n"
    if fmt == "markdown":
        return render_markdown(
            plan,
            symbols=_SYMBOL,
            words=_SUMMARY,
            summary=summary_line(plan),
            short=_short,
            env=env,
        )
    text = _text(plan, color)
    return f"Environment: {env}\n{text}" if env else text
