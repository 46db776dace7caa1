"""A qrt project: its root, the optional ``qrt.yaml`` and the environment a command works on.

``qrt.yaml`` is checked against ``schemas/project.schema.json`` (``qrt schema project``); an error
names ``qrt.yaml`` and the line. An **environment** (``environments:`` in qrt.yaml, chosen with
``--env NAME``, ``QRT_ENV`` or ``default_environment``) is one deployment of the same manifests:
its own target (else the top-level one), its own lockfile (default ``envs/NAME/qrt.lock``, large
results in ``qrt-results/`` beside it) and its own local state ``.qrt/env/NAME/`` (the embedded
runtime, the apply lock and the journal), so one repository is planned and applied against a test
runtime and a production one without the two ever sharing a record.

Local state belongs to a lockfile: the top-level lockfile's is ``.qrt/``, an environment's is
``.qrt/env/NAME/``, and a lockfile given with ``--lockfile`` gets ``.qrt/lockfile/<digest>/``, so a
journal is never replayed into another lockfile than its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qrt_apply.errors import ConfigError, ManifestError

__all__ = ["ENV_VAR", "Limits", "Project", "load_project"]

CONFIG_NAME = "qrt.yaml"
ENV_VAR = "QRT_ENV"
STATE_DIR = ".qrt"
MAX_CONFIG_BYTES = 1024 * 1024  # qrt.yaml holds settings, never data


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


@dataclass(frozen=True)
class Project:
    """The paths and settings one command works with. ``settings`` is qrt.yaml as written;
    ``environment`` the chosen one (None: the top-level settings). Where qrt.yaml declares
    environments and none was chosen, the lockfile, target and state are unknown: reading them
    raises a ConfigError that lists the environments (``qrt validate`` needs none of them)."""

    root: Path
    manifests_dir: Path
    settings: Mapping[str, Any] = field(default_factory=dict)
    environment: str | None = None
    lockfile_override: Path | None = None

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(sorted(self.settings.get("environments") or {}))

    def _environment_settings(self) -> Mapping[str, Any]:
        if self.environment is not None:
            env: Mapping[str, Any] = self.settings["environments"][self.environment]
            return env
        if self.environments:
            raise ConfigError(
                f"{CONFIG_NAME} declares environments ({', '.join(self.environments)}): choose one "
                f"with --env NAME or {ENV_VAR}=NAME (or set default_environment)"
            )
        return self.settings

    @property
    def lockfile(self) -> Path:
        if self.lockfile_override is not None:
            return self.lockfile_override
        env = self._environment_settings()
        if self.environment is not None:
            return self.root / str(env.get("lockfile") or f"envs/{self.environment}/qrt.lock")
        return self.root / str(env.get("lockfile", "qrt.lock"))

    @property
    def results_dir(self) -> Path:
        """Where results too large for the lockfile go (``qrt-results/`` beside it)."""
        from qrt_apply.lockfile import RESULTS_DIR

        return self.lockfile.parent / RESULTS_DIR

    @property
    def state_dir(self) -> Path:
        """Git-ignored local state of this lockfile: the embedded runtime, apply lock, journal.
        ``.qrt/`` itself when no lockfile is chosen yet (what is kept there, such as the cache of
        checked manifests, belongs to no environment; the lockfile and target still raise)."""
        base = self.root / STATE_DIR
        if self.lockfile_override is not None:
            key = hashlib.sha256(str(self.lockfile_override).encode()).hexdigest()[:16]
            return base / "lockfile" / key
        if self.environment is not None:
            return base / "env" / self.environment
        return base

    @property
    def config(self) -> Mapping[str, Any]:
        """The settings in force: qrt.yaml's, with the chosen environment's target."""
        env = self._environment_settings()
        config = {
            k: v
            for k, v in self.settings.items()
            if k not in ("environments", "default_environment")
        }
        if self.environment is not None and "target" in env:
            config["target"] = env["target"]
        return config

    @property
    def parallelism(self) -> int:
        return int(self.settings.get("parallelism", 4))

    @property
    def limits(self) -> Limits:
        return Limits(**(self.settings.get("limits") or {}))


def _schema_message(error: Any) -> tuple[tuple[str | int, ...], str]:
    """(JSON path, message) of a schema error of qrt.yaml, worded like the rest of qrt's."""
    path = tuple(error.absolute_path)
    where = ".".join(str(p) for p in path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            key = ".".join(str(p) for p in (*path, extra[0]))
            return (*path, extra[0]), f"unknown key {key} (known: {', '.join(allowed)})"
    if error.validator in ("type", "minimum") and error.schema.get("minimum") == 1:
        return path, f"{where} must be a positive integer"
    if "propertyNames" in error.schema_path:  # a key (an environment's name) is the problem
        return (*path, error.instance), (
            f"{where}: {error.instance!r} is not a valid name ([a-z0-9][a-z0-9_-]*)"
        )
    return path, f"{where or CONFIG_NAME}: {error.message}"


def _read_settings(config_file: Path) -> dict[str, Any]:
    from qrt_apply.manifests.yamldocs import load_documents  # not at import: it imports us
    from qrt_apply.schema import schema_validator

    try:
        if config_file.stat().st_size > MAX_CONFIG_BYTES:  # checked before it is read
            raise ConfigError(f"{CONFIG_NAME}: larger than {MAX_CONFIG_BYTES:,} bytes")
        text = config_file.read_text("utf-8").replace("\r\n", "\n")
        documents = load_documents(text, CONFIG_NAME)
    except ManifestError as exc:  # invalid YAML, with its line
        raise ConfigError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{CONFIG_NAME}: cannot be read ({type(exc).__name__})") from None
    if not documents:
        return {}
    if len(documents) > 1:
        raise ConfigError(f"{CONFIG_NAME}:{documents[1].start_line}: one YAML document only")
    doc = documents[0]
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{CONFIG_NAME}:{doc.start_line}: must be a mapping")
    import jsonschema

    error = jsonschema.exceptions.best_match(schema_validator("project").iter_errors(doc.data))
    if error is not None:
        path, message = _schema_message(error)
        raise ConfigError(f"{CONFIG_NAME}:{doc.line_of(path)}: {message}")
    settings: dict[str, Any] = doc.data
    envs: dict[str, Any] = settings.get("environments") or {}
    default = settings.get("default_environment")
    if default is not None and default not in envs:
        raise ConfigError(
            f"{CONFIG_NAME}:{doc.line_of(('default_environment',))}: default_environment "
            f"{default!r} is not one of the environments ({', '.join(sorted(envs)) or 'none'})"
        )
    if envs and "lockfile" in settings:
        raise ConfigError(
            f"{CONFIG_NAME}:{doc.line_of(('lockfile',))}: with environments, each has its own "
            "lockfile (environments.NAME.lockfile; default envs/NAME/qrt.lock)"
        )
    seen: dict[str, str] = {}
    for name in sorted(envs):
        lockfile = str((envs[name] or {}).get("lockfile") or f"envs/{name}/qrt.lock")
        if lockfile in seen:
            raise ConfigError(
                f"{CONFIG_NAME}:{doc.line_of(('environments', name))}: environments {seen[lockfile]} "
                f"and {name} share the lockfile {lockfile}; each needs its own"
            )
        seen[lockfile] = name
    if envs:  # `dev:` with nothing under it is an environment with the top-level target
        settings["environments"] = {name: envs[name] or {} for name in envs}
    return settings


def load_project(root: Path, *, env: str | None = None, lockfile: Path | None = None) -> Project:
    """The project at ``root``. ``env`` chooses an environment of qrt.yaml (else its
    ``default_environment``); ``lockfile`` replaces the lockfile (with state of its own)."""
    root = root.resolve()
    if not root.is_dir():
        raise ConfigError(f"{root.name or root} is not a directory")
    config_file = root / CONFIG_NAME
    settings = _read_settings(config_file) if config_file.is_file() else {}
    environments = sorted(settings.get("environments") or {})
    chosen = env or settings.get("default_environment") or None
    if chosen is not None and chosen not in environments:
        known = (
            f"known: {', '.join(environments)}"
            if environments
            else f"{CONFIG_NAME} declares no environments"
        )
        raise ConfigError(f"unknown environment {chosen!r} ({known})")
    return Project(
        root=root,
        manifests_dir=root / str(settings.get("manifests", "manifests")),
        settings=settings,
        environment=chosen,
        lockfile_override=lockfile.resolve() if lockfile is not None else None,
    )
