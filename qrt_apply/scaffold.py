"""``qrt init``: a new program repository that validates, plans and applies as it stands.

What it writes comes from ``templates/init/`` (package data) and the shipped JSON Schemas; see
``FILES`` for where each template goes. Nothing is ever overwritten: if any of the files exists,
``init_project`` names them all and writes none.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from qrt_apply import __version__
from qrt_apply.errors import ConfigError
from qrt_apply.schema import SCHEMA_FILES, schema_text

__all__ = ["FILES", "WORKFLOWS", "init_project", "scaffold_files"]

# (template in templates/init/, path in the new repository). Dotfiles are stored without their dot:
# package data globs do not match hidden files.
FILES = (
    ("qrt.yaml", "qrt.yaml"),
    ("programs.yaml", "manifests/programs.yaml"),
    ("batches.yaml", "manifests/batches.yaml"),
    ("ghz.py.tmpl", "programs/ghz.py"),
    ("bell.qasm", "circuits/bell.qasm"),
    ("qrt-plan.yml", ".github/workflows/qrt-plan.yml"),
    ("qrt-apply.yml", ".github/workflows/qrt-apply.yml"),
    ("gitignore", ".gitignore"),
    ("gitattributes", ".gitattributes"),
    ("README.md", "README.md"),
)
WORKFLOWS = {"plan": ".github/workflows/qrt-plan.yml", "apply": ".github/workflows/qrt-apply.yml"}


def scaffold_files() -> dict[str, str]:
    """Every file ``qrt init`` writes: repository-relative path -> text."""
    templates = resources.files("qrt_apply").joinpath("templates", "init")
    files = {
        dest: templates.joinpath(name).read_text("utf-8").replace("@QRT_VERSION@", __version__)
        for name, dest in FILES
    }
    # Copies of the schemas, for the `# yaml-language-server: $schema=` line of each YAML file.
    for name, file in SCHEMA_FILES.items():
        files[f"schemas/{file}"] = schema_text(name)
    return files


def init_project(directory: Path) -> list[str]:
    """Write the scaffold into ``directory`` (made if missing); returns the paths written.
    Raises ConfigError, having written nothing, when any of the files already exists."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    files = scaffold_files()
    existing = [
        path for path in files if (directory / path).exists() or (directory / path).is_symlink()
    ]
    if existing:
        raise ConfigError(
            f"qrt init would overwrite {len(existing)} file(s) in {directory}: "
            f"{', '.join(sorted(existing))}; nothing was written (move them away, or init elsewhere)"
        )
    written: list[str] = []
    for path, text in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "x", encoding="utf-8", newline="\n") as out:  # never replaces a file
                out.write(text)
        except FileExistsError:  # made by someone else since the check above
            raise ConfigError(
                f"qrt init: {path} appeared in {directory} while writing; "
                f"written so far: {', '.join(written) or 'nothing'}"
            ) from None
        written.append(path)
    return written
