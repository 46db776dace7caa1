"""The text of ``qrt.lock``, fast for big lockfiles.

The text is exactly ``json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\\n"``.
Python's JSON encoder indents in pure Python (about 35 µs per job record), so ``EntryTexts``
keeps the rendered text of each entry of ``programs`` and ``jobs`` while the entry is the same
object (the Lockfile replaces a record on every change, never edits one in place), and
``parse`` keeps each entry's text as it was read: loading then saving 10,000 jobs renders none of
them again. Anything ``parse`` does not recognise as that layout is parsed whole, with no texts
kept, and is then rendered afresh.
"""

from __future__ import annotations

import gc
import json
import re
from typing import Any

__all__ = ["SECTIONS", "EntryTexts", "dumps", "parse"]

SECTIONS = ("programs", "jobs")
_Texts = dict[tuple[str, str], tuple[Any, str]]
_SPECIAL = re.compile(r'["\\\x00-\x1f]')


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)


def _key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


class EntryTexts:
    """The rendered line(s) of each entry of the sections (``    "ADDRESS": {...}``), with the
    record object they were rendered from."""

    def __init__(self, texts: _Texts | None = None) -> None:
        self._texts: _Texts = texts or {}

    def render(self, data: Any) -> str:
        if not isinstance(data, dict) or not data or not all(isinstance(k, str) for k in data):
            return dumps(data) + "\n"
        parts = []
        kept: _Texts = {}
        for key in sorted(data):
            value = data[key]
            if key in SECTIONS and isinstance(value, dict) and value:
                body = self._section(key, value, kept)
            else:
                body = dumps(value).replace("\n", "\n  ")
            parts.append(f"  {_key(key)}: {body}")
        self._texts = kept  # entries no longer in the data are forgotten
        return "{\n" + ",\n".join(parts) + "\n}\n"

    def _section(self, name: str, entries: dict[str, Any], kept: _Texts) -> str:
        items = []
        for address in sorted(entries):
            record = entries[address]
            text = self._texts.get((name, address))
            if text is None or text[0] is not record:
                text = (record, f"    {_key(address)}: " + dumps(record).replace("\n", "\n    "))
            kept[(name, address)] = text
            items.append(text[1])
        return "{\n" + ",\n".join(items) + "\n  }"


class _Unrecognised(Exception):
    pass


def parse(text: str) -> tuple[Any, EntryTexts]:
    """The data of a lockfile's text, and the texts of its entries (raises JSONDecodeError)."""
    # Parsing makes hundreds of thousands of containers, none of them garbage: the collector's
    # passes over them meanwhile (a full one every few ten thousand) are pure cost.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(text)
    finally:
        if enabled:
            gc.enable()


def _parse(text: str) -> tuple[Any, EntryTexts]:
    data = json.loads(text)
    texts: _Texts = {}
    if isinstance(data, dict):
        for name in SECTIONS:
            section = data.get(name)
            try:
                entries = _entry_texts(text, name)
            except (_Unrecognised, ValueError):
                continue
            # The split must find exactly the parsed section's addresses, in order: text cut
            # anywhere but at the entries' own boundaries finds other keys, or other counts.
            if isinstance(section, dict) and list(section) == [a for a, _ in entries]:
                texts.update(((name, a), (section[a], entry)) for a, entry in entries)
    return data, EntryTexts(texts)


def _entry_texts(text: str, name: str) -> list[tuple[str, str]]:
    """Section ``name`` of ``text`` cut into its entries' texts (``    "ADDRESS": {...}``), as
    ``EntryTexts`` writes them. Raises _Unrecognised for any other layout."""
    head = f'\n  "{name}": {{\n'
    start = text.find(head)
    if start < 0:
        if f'\n  "{name}": {{}}' in text:
            return []
        raise _Unrecognised
    entries: list[tuple[str, str]] = []
    pos = start + len(head)
    while True:
        if not text.startswith('    "', pos):
            raise _Unrecognised
        # a key holds no raw newline, so the first '": {' ending a line closes it; an entry's
        # inner lines are indented deeper, so the first line that is exactly '    }' closes it
        colon = text.find('": {\n', pos)
        end = text.find("\n    }", colon)
        if colon < 0 or end < 0:
            raise _Unrecognised
        raw_key = text[pos + 4 : colon + 1]
        # plain keys as they are; anything with an escape, quote or control character (a newline:
        # the key ran on past its line) goes through the JSON parser, which refuses what is wrong
        address = raw_key[1:-1] if not _SPECIAL.search(raw_key, 1, len(raw_key) - 1) else None
        if address is None:
            address = json.loads(raw_key)
            if not isinstance(address, str):
                raise _Unrecognised
        entries.append((address, text[pos : end + 6]))
        pos = end + 6
        if text.startswith(",\n", pos):
            pos += 2
        elif text.startswith("\n  }", pos):
            return entries
        else:
            raise _Unrecognised
