"""``Moved`` manifests: checked against the manifests they sit in, into ``MoveSpec`` values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qrt_apply.errors import ManifestError
from qrt_apply.manifests.yamldocs import Document
from qrt_apply.model import BatchSpec, MoveSpec, ProgramSpec

__all__ = ["moves_from"]


def _defined(
    address: str, programs: Mapping[str, ProgramSpec], batches: Mapping[str, BatchSpec]
) -> bool:
    kind, _, name = address.partition(".")
    if kind == "program":
        return name in programs
    if kind == "batch":
        return name in batches
    batch, _, job = name.partition("/")
    return batch in batches and any(j.name == job for j in batches[batch].jobs)


def moves_from(
    documents: Sequence[Document],
    programs: Mapping[str, ProgramSpec],
    batches: Mapping[str, BatchSpec],
) -> tuple[MoveSpec, ...]:
    """One move per ``Moved`` document: ``to`` of the same kind as ``from`` and defined in the
    manifests, ``from`` no longer defined (a chain a→b→c is written as a→c and b→c)."""
    moves = []
    for doc in documents:
        source, dest = doc.data["from"], doc.data["to"]
        if source.partition(".")[0] != dest.partition(".")[0]:
            raise ManifestError(
                f"Moved: from {source} to {dest}: not the same kind of address",
                doc.path,
                doc.line_of(("to",)),
            )
        if _defined(source, programs, batches):
            raise ManifestError(
                f"Moved: {source} is still defined in the manifests; a move is for an address "
                "that is gone",
                doc.path,
                doc.line_of(("from",)),
            )
        if not _defined(dest, programs, batches):
            raise ManifestError(
                f"Moved: {dest} is not defined in the manifests", doc.path, doc.line_of(("to",))
            )
        moves.append(MoveSpec(source, dest, doc.path, doc.start_line))
    return tuple(moves)
