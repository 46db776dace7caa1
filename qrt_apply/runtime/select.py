"""Which runtime a qrt command talks to, and the target a lockfile records for it.

The first rule that applies wins:

1. ``--account NAME``: the saved account ``NAME`` (``~/.qiskit/qiskit-ibm.json``); missing → error.
2. ``target:`` in ``qrt.yaml``, one of::

       target: embedded                       # the in-process runtime in .qrt/
       target: {account: NAME}                # a saved account (optionally with instance: I)
       target: {channel: ibm_quantum, url: http://host:8000/api, instance: ibm-q/open/main}
       target: {channel: ibm_quantum_platform, url: https://cloud.ibm.com, instance: CRN}

   The third form names the runtime but holds no secret; its token comes from ``QISKIT_IBM_TOKEN``
   when ``QISKIT_IBM_URL`` is unset or names the same url, else from a saved account of the same
   channel and url (the one with the same instance first, then the default one, then by name).
   Without such a token it is an error, never a silent fall back to another runtime.
   ``instance`` in ``qrt.yaml`` wins over the account's.
3. the environment account (``QISKIT_IBM_TOKEN`` + ``QISKIT_IBM_URL``, see ``accounts.py``);
4. a saved default account, in the qiskit-ibm-runtime 0.12.2 order (``accounts.select_account``);
5. else the **embedded** runtime, ``EmbeddedRuntime(project_dir / ".qrt", display_url=".qrt")``.

Accounts of the ``ibm_quantum_platform`` and ``ibm_cloud`` channels open an ``IqpRuntime`` (IBM
Quantum Platform, ``runtime/iqp.py``), ``ibm_quantum`` ones an ``HttpRuntime``.

The ``target`` of the runtime (channel, url, instance -- never a token) is what the lockfile records;
:func:`describe_target` tells it without connecting or opening anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qrt_apply.errors import ConfigError
from qrt_apply.runtime.accounts import (
    CHANNELS,
    PLATFORM_CHANNELS,
    Account,
    default_flag,
    load_account,
    saved_accounts,
    select_account,
)
from qrt_apply.runtime.base import Runtime, Target

__all__ = [
    "EMBEDDED_TARGET",
    "Choice",
    "choose_target",
    "describe_target",
    "open_runtime",
]

EMBEDDED_TARGET = Target(channel="embedded", url=".qrt", instance=None)
_TARGET_KEYS = {"account", "channel", "url", "instance"}


@dataclass(frozen=True)
class Choice:
    """The runtime picked for a command: the target, the account (None for embedded), and why."""

    target: Target
    account: Account | None  # None for embedded (and from describe_target when no token is known)
    source: str

    @property
    def embedded(self) -> bool:
        return self.target.channel == "embedded"


def _http(account: Account, source: str) -> Choice:
    return Choice(account.target, account, source)


def _same_url(a: str | None, b: str | None) -> bool:
    return (a or "").rstrip("/") == (b or "").rstrip("/")


def _token_for(
    channel: str,
    url: str,
    instance: str | None,
    environ: Mapping[str, str],
    account_file: str | os.PathLike[str] | None,
) -> tuple[str, str]:
    """(token, where it came from) for a qrt.yaml target given by channel and url."""
    env_token = environ.get("QISKIT_IBM_TOKEN")
    env_url = environ.get("QISKIT_IBM_URL")
    if env_token and (not env_url or _same_url(env_url, url)):
        return env_token, "QISKIT_IBM_TOKEN"
    candidates = [
        (name, acct)
        for name, acct in saved_accounts(filename=account_file).items()
        if acct.channel == channel and _same_url(acct.resolved_url, url)
    ]
    candidates.sort(
        key=lambda item: (
            item[1].instance != instance,
            not default_flag(item[0], filename=account_file),
            item[0],
        )
    )
    if candidates:
        name, acct = candidates[0]
        return acct.token, f"saved account {name!r}"
    raise ConfigError(
        f"qrt.yaml: target {channel} {url} needs a token: set QISKIT_IBM_TOKEN or save an account "
        f"for that url with `qrt account save --channel {channel} --url {url}`"
    )


def _from_config(
    target: Any,
    environ: Mapping[str, str],
    account_file: str | os.PathLike[str] | None,
    need_token: bool,
) -> Choice | None:
    if target is None:
        return None
    if target == "embedded" or (
        isinstance(target, Mapping) and target.get("channel") == "embedded"
    ):
        if isinstance(target, Mapping) and set(target) - {"channel"}:
            raise ConfigError("qrt.yaml: target: an embedded target takes no other keys")
        return Choice(EMBEDDED_TARGET, None, "qrt.yaml target: embedded")
    if not isinstance(target, Mapping):
        raise ConfigError(
            "qrt.yaml: target must be 'embedded', {account: NAME} or {channel, url, instance}"
        )
    unknown = sorted(set(target) - _TARGET_KEYS)
    if unknown:
        raise ConfigError(
            f"qrt.yaml: target: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TARGET_KEYS))})"
        )
    for key in _TARGET_KEYS & set(target):
        if target[key] is not None and not isinstance(target[key], str):
            raise ConfigError(f"qrt.yaml: target: {key} must be a string")
    instance = target.get("instance") or None
    if target.get("account"):
        if target.get("channel") or target.get("url"):
            raise ConfigError("qrt.yaml: target: give either account or channel/url, not both")
        name = str(target["account"])
        account = load_account(name, filename=account_file)
        if instance:
            account = _with_instance(account, instance)
        return _http(account.validate(), f"qrt.yaml target: account {name!r}")
    channel, url = target.get("channel"), target.get("url")
    if channel not in CHANNELS or not url:
        raise ConfigError(
            f"qrt.yaml: target needs channel ({' or '.join(CHANNELS)}) and url, or account"
        )
    url = str(url).rstrip("/")
    try:
        token, where = _token_for(str(channel), url, instance, environ, account_file)
    except ConfigError:
        if need_token:
            raise
        return Choice(Target(str(channel), url, instance), None, "qrt.yaml target (no token)")
    account = Account(str(channel), token, url=url, instance=instance)
    return _http(account.validate(), f"qrt.yaml target (token from {where})")


def _with_instance(account: Account, instance: str) -> Account:
    return Account(
        account.channel, account.token, account.url, instance, account.verify, account.proxies
    )


def choose_target(
    project_dir: Path,
    *,
    account: str | None = None,
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    account_file: str | os.PathLike[str] | None = None,
    need_token: bool = True,
    state_dir: Path | None = None,
) -> Choice:
    """Apply the rules of the module docstring. ``config`` is the parsed ``qrt.yaml``; None reads
    ``project_dir / "qrt.yaml"`` if it exists. Opens nothing, sends nothing. With ``need_token``
    False a qrt.yaml target with no token available still answers (``account`` None).
    ``state_dir`` is where the embedded runtime keeps its state (default ``.qrt``)."""
    choice = _choose(project_dir, account, config, environ, account_file, need_token)
    if choice.embedded and state_dir is not None:
        return Choice(_embedded_target(project_dir, state_dir), None, choice.source)
    return choice


def _choose(
    project_dir: Path,
    account: str | None,
    config: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None,
    account_file: str | os.PathLike[str] | None,
    need_token: bool,
) -> Choice:
    env = os.environ if environ is None else environ
    if account:
        return _http(
            load_account(account, filename=account_file).validate(), f"--account {account}"
        )
    if config is None:
        config = _read_config(project_dir)
    chosen = _from_config(config.get("target"), env, account_file, need_token)
    if chosen is not None:
        return chosen
    selected = select_account(filename=account_file, environ=env)
    if selected is not None:
        return _http(selected.account.validate(), selected.source)
    return Choice(EMBEDDED_TARGET, None, "embedded runtime (no account configured)")


def _read_config(project_dir: Path) -> Mapping[str, Any]:
    from qrt_apply.project import load_project  # the one reader of qrt.yaml

    return load_project(project_dir).config


def _embedded_target(project_dir: Path, state_dir: Path | None) -> Target:
    """The embedded runtime's target: its state directory, relative to the project (``.qrt``, or
    ``.qrt/env/NAME`` for an environment), so lockfiles of two environments never mix."""
    if state_dir is None:
        return EMBEDDED_TARGET
    try:
        shown = state_dir.resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        shown = state_dir.name
    return Target(channel="embedded", url=shown, instance=None)


def describe_target(
    project_dir: Path,
    *,
    account: str | None = None,
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    account_file: str | os.PathLike[str] | None = None,
    state_dir: Path | None = None,
) -> Target:
    """The target :func:`open_runtime` would use, without opening it (nor needing a token)."""
    return choose_target(
        project_dir,
        account=account,
        config=config,
        environ=environ,
        account_file=account_file,
        need_token=False,
        state_dir=state_dir,
    ).target


def open_runtime(
    project_dir: Path,
    *,
    account: str | None = None,
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    account_file: str | os.PathLike[str] | None = None,
    read_only: bool = False,
    state_dir: Path | None = None,
) -> Runtime:
    """The runtime for this project (see the module docstring). The HTTP client logs in lazily,
    on its first call; the embedded runtime keeps its state in ``state_dir`` (default
    ``project_dir / ".qrt"``; an environment's is ``.qrt/env/NAME``).
    ``read_only`` (for ``qrt plan``) keeps the embedded runtime from running handed-over jobs."""
    choice = choose_target(
        project_dir,
        account=account,
        config=config,
        environ=environ,
        account_file=account_file,
        state_dir=state_dir,
    )
    if choice.embedded or choice.account is None:
        from qrt_apply.runtime.embedded import EmbeddedRuntime

        runtime: Runtime = EmbeddedRuntime(
            state_dir if state_dir is not None else project_dir / ".qrt",
            display_url=choice.target.url,
            read_only=read_only,
        )
        return runtime
    if choice.account.channel in PLATFORM_CHANNELS:
        from qrt_apply.runtime.iqp import IqpRuntime

        return IqpRuntime(choice.account)
    from qrt_apply.runtime.http import HttpRuntime, http_options

    return HttpRuntime(choice.account, **http_options((config or {}).get("http")))
