"""A qrt project: its root, the optional ``qrt.yaml`` and the paths it names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qrt_apply.errors import ConfigError

__all__ = ["Limits", "Project", "load_project"]

_KEYS = {"manifests", "lockfile", "target", "parallelism", "limits"}


@dataclass(frozen=True)
class Limits:
    """Bounds on what reading the manifests may cost (qrt.yaml ``limits:``); each stops hostile or
    runaway input with one message before it can exhaust time or memory."""

    max_manifest_bytes: int = 10 * 1024 * 1024  # one manifest file
    max_file_bytes: int = 10 * 1024 * 1024  # one $file or Program source
    max_matrix_jobs: int = 10_000  # the matrix product of one job entry
    max_jobs: int = 50_000  # all jobs of the project, matrices expanded
    max_expanded_bytes: int = 64 * 1024 * 1024  # inputs text one matrix job entry expands to
    max_depth: int = 64  # nesting of YAML collections
    max_yaml_nodes: int = 250_000  # YAML nodes in one manifest file (~0.5 KB of memory each)


def _limits(raw: Any) -> Limits:
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        raise ConfigError("qrt.yaml: limits must be a mapping")
    known = set(Limits.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"qrt.yaml: unknown key limits.{unknown[0]} (known: {', '.join(sorted(known))})"
        )
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"qrt.yaml: limits.{key} must be a positive integer")
    return Limits(**raw)


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

    @property
    def limits(self) -> Limits:
        return _limits(self.config.get("limits"))


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
        _limits(config.get("limits"))  # refused here, before any command runs
    return Project(
        root=root,
        manifests_dir=root / str(config.get("manifests", "manifests")),
        lockfile=root / str(config.get("lockfile", "qrt.lock")),
        config=config,
    )
