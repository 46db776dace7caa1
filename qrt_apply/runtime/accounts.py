"""Accounts kept the way qiskit-ibm-runtime keeps them, and the account selection order.

**File.** ``~/.qiskit/qiskit-ibm.json`` (``filename=`` overrides it; ``~`` is resolved at call
time, so a test that sets ``HOME`` gets its own file). A JSON object mapping an account name to::

    {"channel": "ibm_quantum" | "ibm_cloud" | "ibm_quantum_platform", "token": ..., "url": ...,
     "instance": ...,
     "proxies": {...}, "verify": true, "is_default_account": true}

Keys whose value is None are omitted; ``is_default_account`` is written only for the one default
account. The file is written with sorted keys and an indent of 4, like the real client, but
atomically and readable by its owner only (mode 0600, because it holds tokens). Unlike the real
client a mere read never creates the file. Keys qrt does not know (``channel_strategy``, ...) are
kept on rewrite.

**Channels.** ``ibm_quantum`` is the retired IBM Quantum service (program upload, login flow);
``ibm_quantum_platform`` and ``ibm_cloud`` are today's IBM Quantum Platform, as qiskit-ibm-runtime
0.45+ names it: an IBM Cloud API key as token and an instance CRN (see ``runtime/iqp_auth.py``).

**Default names.** ``default-ibm-quantum`` / ``default-ibm-cloud`` /
``default-ibm-quantum-platform`` by channel; the channel of a save comes from the argument, else
``QISKIT_IBM_CHANNEL``, else ``ibm_cloud``.

**Environment.** ``QISKIT_IBM_TOKEN`` and ``QISKIT_IBM_URL`` (both required),
``QISKIT_IBM_INSTANCE`` (optional), ``QISKIT_IBM_CHANNEL`` (the env account's channel; default
``ibm_cloud``).

**Selection order** (:func:`select_account`), the one qiskit-ibm-runtime 0.12.2 implements:

1. the account named ``name`` (missing → ``ConfigError``);
2. the env account;
3. the saved account marked ``is_default_account`` (of ``channel`` when one is given);
4. for ``channel`` (when given): the account saved under the channel's default name, else any saved
   account of that channel;
5. steps 3 and 4 for ``QISKIT_IBM_CHANNEL``, else ``ibm_cloud``;
6. ``default-ibm-cloud``, then ``default-ibm-quantum-platform``, then ``default-ibm-quantum``;
7. a legacy ``~/.qiskit/qiskitrc`` (read only; the real client copies it into the JSON file, qrt
   does not write on read);

and ``None`` when nothing matched (qrt then uses its embedded runtime).
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from qrt_apply.errors import ConfigError
from qrt_apply.fileio import atomic_write
from qrt_apply.runtime.base import Target

__all__ = [
    "CHANNELS",
    "DEFAULT_URLS",
    "PLATFORM_CHANNELS",
    "Account",
    "Selection",
    "default_account_file",
    "default_account_name",
    "default_flag",
    "delete_account",
    "env_account",
    "load_account",
    "mask_token",
    "save_account",
    "saved_accounts",
    "select_account",
]

CHANNELS = ("ibm_quantum", "ibm_cloud", "ibm_quantum_platform")
#: The channels of IBM Quantum Platform (the v1 API: job batches of built-ins, no program upload).
PLATFORM_CHANNELS = frozenset({"ibm_cloud", "ibm_quantum_platform"})
DEFAULT_URLS = {
    "ibm_quantum": "https://auth.quantum-computing.ibm.com/api",
    "ibm_cloud": "https://cloud.ibm.com",
    "ibm_quantum_platform": "https://cloud.ibm.com",
}
_DEFAULT_NAMES = {
    "ibm_quantum": "default-ibm-quantum",
    "ibm_cloud": "default-ibm-cloud",
    "ibm_quantum_platform": "default-ibm-quantum-platform",
}
_FALLBACK_CHANNEL = "ibm_cloud"


@dataclass(frozen=True)
class Account:
    """Credentials for one Qiskit Runtime. ``repr`` never shows the token."""

    channel: str
    token: str = field(repr=False)
    url: str | None = None  # None: the channel's default URL (see ``resolved_url``)
    instance: str | None = None  # hub/group/project (ibm_quantum) or a CRN (the platform)
    verify: bool = True
    proxies: Mapping[str, Any] | None = None

    @property
    def resolved_url(self) -> str:
        return self.url or DEFAULT_URLS.get(self.channel, DEFAULT_URLS["ibm_quantum"])

    @property
    def target(self) -> Target:
        """What a lockfile records for this account: channel, url (no trailing slash), instance."""
        return Target(self.channel, self.resolved_url.rstrip("/"), self.instance)

    def validate(self) -> Account:
        """Check the account as the real client does before saving or using it; return self."""
        if self.channel not in CHANNELS:
            raise ConfigError(
                f"invalid account channel {self.channel!r}; expected one of {', '.join(CHANNELS)}"
            )
        if not isinstance(self.token, str) or not self.token:
            raise ConfigError("the account has no token")
        parsed = urlparse(self.resolved_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"invalid account url {self.resolved_url!r}; expected http(s)://host")
        if self.channel == "ibm_quantum" and self.instance is not None:
            parts = self.instance.split("/")
            if len(parts) != 3 or not all(parts):
                raise ConfigError(
                    f"invalid instance {self.instance!r}; ibm_quantum expects hub/group/project"
                )
        if self.channel in PLATFORM_CHANNELS and not (self.instance or "").startswith("crn:"):
            raise ConfigError(
                f"an {self.channel} account needs an instance (its CRN, crn:v1:...); qrt does not "
                "look instances up by name (for the program API of `qrt serve` use "
                "--channel ibm_quantum)"
            )
        if self.proxies is not None and not isinstance(self.proxies, Mapping):
            raise ConfigError("account proxies must be a mapping like {'urls': {...}}")
        return self

    def to_saved_format(self) -> dict[str, Any]:
        """The JSON object the real client writes (None values omitted, url resolved)."""
        data: dict[str, Any] = {
            "channel": self.channel,
            "token": self.token,
            "url": self.resolved_url,
            "instance": self.instance,
            "verify": self.verify,
            "proxies": dict(self.proxies) if self.proxies else None,
        }
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_saved_format(cls, data: Mapping[str, Any]) -> Account:
        proxies = data.get("proxies")
        return cls(
            channel=str(data.get("channel") or ""),
            token=str(data.get("token") or ""),
            url=data.get("url") or None,
            instance=data.get("instance") or None,
            verify=bool(data.get("verify", True)),
            proxies=dict(proxies) if isinstance(proxies, Mapping) and proxies else None,
        )


class Selection(NamedTuple):
    """An account and where it came from (for messages; never the token)."""

    source: str
    account: Account


def mask_token(token: str) -> str:
    """A token as it may be shown: its last four characters at most."""
    if len(token) < 12:
        return "****"
    return "****" + token[-4:]


def default_account_file() -> Path:
    """``~/.qiskit/qiskit-ibm.json``, resolved now (HOME may change between calls)."""
    return Path(os.path.expanduser("~")) / ".qiskit" / "qiskit-ibm.json"


def default_account_name(channel: str) -> str:
    return _DEFAULT_NAMES.get(channel, _DEFAULT_NAMES[_FALLBACK_CHANNEL])


def _path(filename: str | os.PathLike[str] | None) -> Path:
    return Path(os.path.expanduser(os.fspath(filename))) if filename else default_account_file()


def _read_raw(filename: str | os.PathLike[str] | None) -> dict[str, Any]:
    path = _path(filename)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read account file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: account file is not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: account file must hold a JSON object")
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def _write_raw(filename: str | os.PathLike[str] | None, data: Mapping[str, Any]) -> None:
    path = _path(filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, sort_keys=True, indent=4)
    atomic_write(path, text, mode=0o600)  # 0600 whatever the umask: the file holds tokens


def saved_accounts(*, filename: str | os.PathLike[str] | None = None) -> dict[str, Account]:
    """Every saved account by name, in name order."""
    raw = _read_raw(filename)
    return {name: Account.from_saved_format(raw[name]) for name in sorted(raw)}


def default_flag(name: str, *, filename: str | os.PathLike[str] | None = None) -> bool:
    """Whether the saved account ``name`` carries ``is_default_account``."""
    return bool(_read_raw(filename).get(name, {}).get("is_default_account"))


def load_account(name: str, *, filename: str | os.PathLike[str] | None = None) -> Account:
    raw = _read_raw(filename)
    if name not in raw:
        known = ", ".join(sorted(raw)) or "none"
        raise ConfigError(f"no saved account named {name!r} (saved accounts: {known})")
    return Account.from_saved_format(raw[name])


def save_account(
    account: Account,
    *,
    name: str | None = None,
    filename: str | os.PathLike[str] | None = None,
    set_as_default: bool = False,
    overwrite: bool = False,
) -> str:
    """Validate and save ``account``; return the name it was saved under."""
    account.validate()
    name = name or default_account_name(account.channel)
    raw = _read_raw(filename)
    if name in raw and not overwrite:
        raise ConfigError(
            f"an account named {name!r} already exists; use --overwrite to replace it"
        )
    entry = account.to_saved_format()
    if set_as_default:
        for other in raw.values():
            other.pop("is_default_account", None)
        entry["is_default_account"] = True
    elif raw.get(name, {}).get("is_default_account"):
        entry["is_default_account"] = True  # overwriting the default keeps it the default
    raw[name] = entry
    _write_raw(filename, raw)
    return name


def delete_account(name: str, *, filename: str | os.PathLike[str] | None = None) -> bool:
    """Delete the saved account ``name``; False when there was none."""
    raw = _read_raw(filename)
    if name not in raw:
        return False
    del raw[name]
    _write_raw(filename, raw)
    return True


def env_account(
    channel: str | None = None, *, environ: Mapping[str, str] | None = None
) -> Account | None:
    """The account the QISKIT_IBM_* variables describe, or None without both token and url."""
    env = os.environ if environ is None else environ
    token = env.get("QISKIT_IBM_TOKEN")
    url = env.get("QISKIT_IBM_URL")
    if not (token and url):
        return None
    return Account(
        channel=channel or env.get("QISKIT_IBM_CHANNEL") or _FALLBACK_CHANNEL,
        token=token,
        url=url,
        instance=env.get("QISKIT_IBM_INSTANCE") or None,
    )


def _qiskitrc_account(path: Path) -> Account | None:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return None
    for section in parser.sections():
        items = dict(parser.items(section))
        if items.get("token"):
            return Account(
                channel="ibm_quantum",
                token=items["token"],
                url=items.get("url") or None,
                instance=items.get("default_provider") or None,
                verify=items.get("verify", "true").lower() not in ("false", "0", "no"),
            )
    return None


def _saved_default(raw: Mapping[str, Any], channel: str | None) -> Selection | None:
    """Steps 3 and 4 of the order for one channel (or any channel for step 3 when None)."""
    for name in sorted(raw):
        entry = raw[name]
        if entry.get("is_default_account") and (channel is None or entry.get("channel") == channel):
            return Selection(f"saved default account {name!r}", Account.from_saved_format(entry))
    if channel is None:
        return None
    default_name = default_account_name(channel)
    if default_name in raw and raw[default_name].get("channel", channel) == channel:
        return Selection(
            f"saved account {default_name!r}", Account.from_saved_format(raw[default_name])
        )
    for name in sorted(raw):
        if raw[name].get("channel") == channel:
            return Selection(f"saved account {name!r}", Account.from_saved_format(raw[name]))
    return None


def select_account(
    name: str | None = None,
    *,
    channel: str | None = None,
    filename: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Selection | None:
    """Pick an account in the 0.12.2 order (module docstring); None when there is none."""
    env = os.environ if environ is None else environ
    if name:
        return Selection(f"saved account {name!r}", load_account(name, filename=filename))
    from_env = env_account(channel, environ=env)
    if from_env is not None:
        return Selection("environment (QISKIT_IBM_TOKEN, QISKIT_IBM_URL)", from_env)
    raw = _read_raw(filename)
    if channel:
        found = _saved_default(raw, channel)
        if found is not None:
            return found
    else:
        found = _saved_default(raw, None)
        if found is not None:
            return found
    found = _saved_default(raw, env.get("QISKIT_IBM_CHANNEL") or _FALLBACK_CHANNEL)
    if found is not None:
        return found
    for channel_name in ("ibm_cloud", "ibm_quantum_platform", "ibm_quantum"):
        default_name = default_account_name(channel_name)
        if default_name in raw:
            return Selection(
                f"saved account {default_name!r}", Account.from_saved_format(raw[default_name])
            )
    legacy = _qiskitrc_account(_path(filename).parent / "qiskitrc")
    if legacy is not None:
        return Selection("legacy ~/.qiskit/qiskitrc", legacy)
    return None
