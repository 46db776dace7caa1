"""A qrt project: its root, the optional ``qrt.yaml`` and the paths it names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qrt_apply.errors import ConfigError

__all__ = ["Project", "load_project"]

_KEYS = {"manifests", "lockfile", "target", "parallelism"}


@dataclass(frozen=True)
class Project:
    root: Path
    manifests_dir: Path
    lockfile: Path
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        """``.qrt/``: git-ignored local state (embedded runtime, apply lock)."""
        return self.root / ".qrt"

    @property
    def parallelism(self) -> int:
        return int(self.config.get("parallelism", 4))


def load_project(root: Path) -> Project:
    root = root.resolve()
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory")
    config: dict[str, Any] = {}
    config_file = root / "qrt.yaml"
    if config_file.is_file():
        try:
            loaded = yaml.safe_load(config_file.read_text("utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"qrt.yaml{where}: invalid YAML") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("qrt.yaml: must be a mapping")
        config = loaded or {}
        unknown = sorted(set(config) - _KEYS)
        if unknown:
            raise ConfigError(
                f"qrt.yaml: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
            )
        parallelism = config.get("parallelism", 4)
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ConfigError("qrt.yaml: parallelism must be a positive integer")
    return Project(
        root=root,
        manifests_dir=root / str(config.get("manifests", "manifests")),
        lockfile=root / str(config.get("lockfile", "qrt.lock")),
        config=config,
    )
