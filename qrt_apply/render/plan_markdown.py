"""The markdown view of a Plan: a pull-request comment that fits, whatever the plan's size.

GitHub refuses comments over 65,536 characters, so the text stays under ``MAX_CHARS`` (60,000):
programs are listed one per row, jobs are summarised per batch, and each batch's jobs sit in a
collapsible ``<details>`` block of at most ``ROWS_PER_BATCH`` rows ("… and N more"); once the
budget is spent, the remaining batches keep only their summary line. Every cell is cut to a short
width, so no line runs long. The comment starts with a hidden marker (``<!-- qrt-plan -->``, or
``<!-- qrt-plan:ENV -->`` for an environment) by which a bot finds and updates its earlier comment,
and it names the target (and the environment) it was planned against.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from qrt_apply.plan.model import Action, Plan

__all__ = ["MAX_CHARS", "ROWS_PER_BATCH", "marker", "render_markdown"]

MAX_CHARS = 60_000
ROWS_PER_BATCH = 50  # job rows shown per batch before "… and N more"
BATCHES_SHOWN = 200  # most rows of the per-batch summary table
LIST_SHOWN = 50  # most drift, orphan and kept addresses listed
CHANGES_SHOWN = 20  # actions whose field changes are spelled out, per group
CELL = 100  # characters of one table cell
_RESERVE = 2_000  # kept free for the closing lines of whatever is open when the budget ends


def marker(env: str | None = None) -> str:
    """The hidden first line a bot looks for to update its own earlier comment."""
    return f"<!-- qrt-plan:{_safe(env)} -->" if env else "<!-- qrt-plan -->"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._/-]", "_", text)[:64]


def _cell(text: str, width: int = CELL) -> str:
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _code(text: str, width: int = CELL) -> str:
    flat = _cell(text, width).replace("`", "'")
    return f"`{flat}`"


def _target(target: Mapping[str, Any]) -> str:
    if not target:
        return "Target: not recorded yet."
    channel = str(target.get("channel") or "?")
    if channel == "embedded":
        return f"Target: the embedded runtime ({_code(target.get('url') or '.qrt')})."
    text = f"Target: {_code(channel)} at {_code(target.get('url') or '?')}"
    if target.get("instance"):
        text += f", instance {_code(target['instance'])}"
    return text + "."


def _group_of(address: str) -> str:
    if address.startswith("job."):
        return "batch." + address[len("job.") :].split("/", 1)[0]
    return "programs"


def _counts(actions: Sequence[Action], words: Sequence[tuple[str, str]]) -> str:
    counts: dict[str, int] = {}
    for action in actions:
        counts[action.kind] = counts.get(action.kind, 0) + 1
    return ", ".join(f"{counts[kind]} {word}" for kind, word in words if counts.get(kind))


class _Text:
    """Lines under a character budget."""

    def __init__(self, budget: int) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.budget = budget

    def add(self, *lines: str) -> None:
        for line in lines:
            self.lines.append(line)
            self.size += len(line) + 1

    def fits(self, *lines: str) -> bool:
        return self.size + sum(len(line) + 1 for line in lines) <= self.budget


def _row(symbol: str, action: Action) -> str:
    why = action.reason + (" (drift)" if action.drift else "")
    return f"| `{symbol}` | {_code(action.address)} | {action.kind} | {_cell(why)} |"


def _changes(actions: Sequence[Action], short: Any) -> list[str]:
    changed = [a for a in actions if a.changes]
    if not changed:
        return []
    lines = ["", "```diff"]
    for action in changed[:CHANGES_SHOWN]:
        lines.append(f"# {_cell(action.address)}")
        for change in action.changes[:10]:
            lines.append(f"- {_cell(change.field, 60)}: {short(change.old)}")
            lines.append(f"+ {_cell(change.field, 60)}: {short(change.new)}")
        if len(action.changes) > 10:
            lines.append(f"# … and {len(action.changes) - 10} more fields")
    if len(changed) > CHANGES_SHOWN:
        lines.append(f"# … and {len(changed) - CHANGES_SHOWN} more changed")
    lines.append("```")
    return lines


def _bullets(title: str, addresses: Sequence[str]) -> list[str]:
    if not addresses:
        return []
    lines = ["", title]
    lines.extend(f"- {_code(a)}" for a in addresses[:LIST_SHOWN])
    if len(addresses) > LIST_SHOWN:
        lines.append(f"- … and {len(addresses) - LIST_SHOWN} more")
    return lines


def render_markdown(
    plan: Plan,
    *,
    symbols: Mapping[str, str],
    words: Sequence[tuple[str, str]],
    summary: str,
    short: Any,
    env: str | None = None,
) -> str:
    """The plan as a pull-request comment under ``MAX_CHARS``; ``symbols``, ``words``, ``summary``
    and ``short`` are the text view's, so both views say the same thing."""
    title = "### qrt plan" + (f" for environment {_code(env, 64)}" if env else "")
    head = [marker(env), title, "", _target(plan.target)]
    if not plan.refreshed:
        head.append("Not refreshed: the lockfile is taken as the runtime's state.")
    head.append("")
    tail = _bullets("Drift (changed on the runtime outside qrt):", plan.drift)
    tail += _bullets(
        "Orphaned (in qrt.lock, gone from the manifests; `--prune` removes):", plan.orphans
    )
    tail += _bullets(
        "Kept on the runtime although gone from the manifests (`prune: false`):", plan.kept
    )
    out = _Text(MAX_CHARS - _RESERVE - sum(len(line) + 1 for line in tail))
    out.add(*head)
    if not plan.has_changes:
        out.add("**No changes.** The runtime matches the manifests.")
    else:
        out.add(f"**{summary}**", "")
        groups: dict[str, list[Action]] = {}
        for action in plan.actions:
            groups.setdefault(_group_of(action.address), []).append(action)
        programs = groups.pop("programs", [])
        if programs:
            out.add("| | address | action | why |", "|---|---|---|---|")
            for number, action in enumerate(programs):
                if not out.fits(_row("", action)):
                    out.add(f"| | … and {len(programs) - number} more programs | | |")
                    break
                out.add(_row(symbols.get(action.kind, "?"), action))
            diff = _changes(programs, short)
            if diff and out.fits(*diff):
                out.add(*diff)
            out.add("")
        if groups:
            _batches(out, groups, symbols, words, short)
    out.add(*tail)
    return "\n".join(out.lines) + "\n"


def _batches(
    out: _Text,
    groups: Mapping[str, list[Action]],
    symbols: Mapping[str, str],
    words: Sequence[tuple[str, str]],
    short: Any,
) -> None:
    names = list(groups)
    out.add("| batch | jobs | actions |", "|---|---|---|")
    for number, name in enumerate(names):
        actions = groups[name]
        row = f"| {_code(name)} | {len(actions)} | {_cell(_counts(actions, words))} |"
        if number == BATCHES_SHOWN or not out.fits(row):
            out.add(f"| … and {len(names) - number} more batches | | |")
            break
        out.add(row)
    out.add("")
    for index, name in enumerate(names):
        actions = groups[name]
        opening = [
            "<details>",
            # markdown is not rendered inside <summary>: HTML there
            f"<summary><code>{html.escape(_cell(name))}</code>: "
            f"{html.escape(_counts(actions, words))}</summary>",
            "",
            "| | address | action | why |",
            "|---|---|---|---|",
        ]
        if not out.fits(*opening, _row("", actions[0])):
            rest = len(names) - index
            out.add(
                f"… and {rest} more batch{'es' if rest > 1 else ''}: `qrt plan` lists them all."
            )
            return
        out.add(*opening)
        shown = 0
        for action in actions[:ROWS_PER_BATCH]:
            row = _row(symbols.get(action.kind, "?"), action)
            if not out.fits(row):
                break
            out.add(row)
            shown += 1
        if shown < len(actions):
            out.add("", f"… and {len(actions) - shown} more in {_code(name)}.")
        diff = _changes(actions, short)
        if diff and out.fits(*diff):
            out.add(*diff)
        out.add("", "</details>", "")
