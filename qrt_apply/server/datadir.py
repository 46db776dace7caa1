"""The data directory of ``qrt serve`` (the store and the server DB), as both ``qrt serve`` and
``qrt users`` open it, and their shared ``--data-dir`` option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from qrt_apply.errors import ConfigError

__all__ = [
    "DEFAULT_DATA_DIR",
    "SERVER_DB_FILE",
    "STORE_FILE",
    "data_dir_option",
    "open_store",
    "prepare_data_dir",
]

DEFAULT_DATA_DIR = ".qrt-server"
STORE_FILE = "runtime.db"  # the same name as the embedded runtime's
SERVER_DB_FILE = "server.db"

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    envvar="QRT_SERVE_DATA_DIR",
    show_default=True,
    help="Server state directory (also $QRT_SERVE_DATA_DIR).",
)


def prepare_data_dir(data_dir: Path, *, create: bool) -> None:
    if data_dir.is_dir():
        return
    if not create:
        raise ConfigError(
            f"no server data directory at {data_dir}; create a user first with "
            f"'qrt users create NAME --data-dir {data_dir}'"
        )
    data_dir.mkdir(parents=True, mode=0o700)


def open_store(data_dir: Path, *, create: bool = False) -> Any:
    from qrt_apply.engine.store import Store

    prepare_data_dir(data_dir, create=create)
    return Store(data_dir / STORE_FILE)
