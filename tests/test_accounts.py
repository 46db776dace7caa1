"""Accounts: the qiskit-ibm.json format, env accounts, the 0.12.2 selection order, and the
``qrt account`` / ``qrt backends|programs|jobs`` commands. HOME is a tmp dir in every test."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner

from qrt_apply.errors import ConfigError
from qrt_apply.runtime import accounts_cli
from qrt_apply.runtime.accounts import (
    Account,
    default_account_file,
    default_flag,
    delete_account,
    env_account,
    load_account,
    mask_token,
    save_account,
    saved_accounts,
    select_account,
)
from qrt_apply.runtime.base import BackendInfo, JobInfo, ProgramInfo

from support.oldclient import require_old_python

TOKEN = "tok-0123456789abcdef-SECRET"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def quantum(token: str = TOKEN, **kw: Any) -> Account:
    return Account("ibm_quantum", token, url=kw.pop("url", "http://127.0.0.1:8000/api"), **kw)


def read_file() -> dict[str, Any]:
    return dict(json.loads(default_account_file().read_text()))


# -- the file --------------------------------------------------------------------------------------


def test_file_shape_is_the_real_clients(home: Path) -> None:
    assert default_account_file() == home / ".qiskit" / "qiskit-ibm.json"
    assert save_account(quantum(instance="ibm-q/open/main")) == "default-ibm-quantum"
    cloud = Account("ibm_cloud", "other-token-123456", instance="crn:v1:x:y:z:us-east:a:b::")
    assert save_account(cloud) == "default-ibm-cloud"
    expected = {
        "default-ibm-cloud": {
            "channel": "ibm_cloud",
            "instance": "crn:v1:x:y:z:us-east:a:b::",
            "token": "other-token-123456",
            "url": "https://cloud.ibm.com",
            "verify": True,
        },
        "default-ibm-quantum": {
            "channel": "ibm_quantum",
            "instance": "ibm-q/open/main",
            "token": TOKEN,
            "url": "http://127.0.0.1:8000/api",
            "verify": True,
        },
    }
    text = default_account_file().read_text()
    assert text == json.dumps(expected, sort_keys=True, indent=4)
    assert stat.S_IMODE(os.stat(default_account_file()).st_mode) == 0o600
    assert load_account("default-ibm-quantum") == quantum(instance="ibm-q/open/main")


def test_reads_what_the_real_client_wrote_and_keeps_unknown_keys() -> None:
    default_account_file().parent.mkdir(parents=True)
    default_account_file().write_text(
        json.dumps(
            {
                "cloud": {
                    "channel": "ibm_cloud",
                    "channel_strategy": "q-ctrl",
                    "instance": "crn:v1:a",
                    "token": "abc-123456789",
                    "url": "https://cloud.ibm.com",
                    "verify": False,
                    "proxies": {"urls": {"https": "http://proxy:3128"}},
                }
            },
            indent=4,
        )
    )
    cloud = load_account("cloud")
    assert (cloud.verify, cloud.proxies) == (False, {"urls": {"https": "http://proxy:3128"}})
    save_account(quantum(), name="mine", set_as_default=True)
    assert read_file()["cloud"]["channel_strategy"] == "q-ctrl"
    assert read_file()["mine"]["is_default_account"] is True


def test_overwrite_default_flag_and_delete() -> None:
    save_account(quantum(), name="a", set_as_default=True)
    with pytest.raises(ConfigError, match="already exists"):
        save_account(quantum(), name="a")
    save_account(quantum("new-token-123456"), name="a", overwrite=True)
    assert default_flag("a") and load_account("a").token == "new-token-123456"
    save_account(quantum(), name="b", set_as_default=True)
    assert (default_flag("a"), default_flag("b")) == (False, True)
    assert "is_default_account" not in read_file()["a"]
    assert delete_account("a") is True and delete_account("a") is False
    assert list(saved_accounts()) == ["b"]
    with pytest.raises(ConfigError, match="no saved account named 'a'.*saved accounts: b"):
        load_account("a")


def test_channel_of_a_save_without_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "ibm_quantum")
    assert save_account(quantum()) == "default-ibm-quantum"


@pytest.mark.parametrize(
    ("account", "message"),
    [
        (Account("ibm_x", TOKEN), "invalid account channel"),
        (Account("ibm_quantum", ""), "no token"),
        (Account("ibm_quantum", TOKEN, instance="just-a-name"), "hub/group/project"),
        (Account("ibm_cloud", TOKEN), "needs an instance"),
        (Account("ibm_quantum", TOKEN, url="ftp://x"), "invalid account url"),
    ],
)
def test_invalid_accounts_are_not_saved(account: Account, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        save_account(account)
    assert TOKEN not in str(info.value)
    assert not default_account_file().exists()


def test_bad_file_is_a_config_error() -> None:
    default_account_file().parent.mkdir(parents=True)
    default_account_file().write_text('{"a": \n  [')
    with pytest.raises(ConfigError, match=r"qiskit-ibm.json:2: account file is not valid JSON"):
        saved_accounts()


def test_token_is_never_shown() -> None:
    assert TOKEN not in repr(quantum())
    assert mask_token(TOKEN) == "****CRET"
    assert mask_token("short") == "****"


def test_filename_override(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "accounts.json"
    save_account(quantum(), name="x", filename=other)
    assert list(saved_accounts(filename=other)) == ["x"]
    assert not default_account_file().exists()


# -- env and selection order -----------------------------------------------------------------------


def test_env_account_needs_token_and_url() -> None:
    assert env_account(environ={"QISKIT_IBM_TOKEN": "t"}) is None
    env = {
        "QISKIT_IBM_TOKEN": "t",
        "QISKIT_IBM_URL": "http://u/api",
        "QISKIT_IBM_INSTANCE": "h/g/p",
    }
    assert env_account(environ=env) == Account("ibm_cloud", "t", "http://u/api", "h/g/p")
    env["QISKIT_IBM_CHANNEL"] = "ibm_quantum"
    assert env_account(environ=env) == Account("ibm_quantum", "t", "http://u/api", "h/g/p")


def pick(environ: dict[str, str] | None = None, **kw: Any) -> str | None:
    found = select_account(environ=environ or {}, **kw)
    return None if found is None else found.account.token


def test_selection_order_0_12_2() -> None:
    assert pick() is None
    save_account(quantum("quantum-other"), name="zzz")  # a non-default quantum account
    assert pick() is None  # only ibm_cloud is looked at without QISKIT_IBM_CHANNEL
    assert pick({"QISKIT_IBM_CHANNEL": "ibm_quantum"}) == "quantum-other"  # any of that channel
    save_account(quantum("quantum-default"))
    assert pick({"QISKIT_IBM_CHANNEL": "ibm_quantum"}) == "quantum-default"  # default name first
    assert pick() == "quantum-default"  # step 6: default-ibm-quantum
    save_account(Account("ibm_cloud", "cloud-any", instance="crn:v1:c"), name="c")
    assert pick() == "cloud-any"  # step 5 with ibm_cloud: any cloud account
    save_account(Account("ibm_cloud", "cloud-default", instance="crn:v1:c"))
    assert pick() == "cloud-default"
    save_account(quantum("marked"), name="m", set_as_default=True)
    assert pick() == "marked"  # step 3: is_default_account
    assert pick(channel="ibm_cloud") == "cloud-default"  # flag of another channel ignored
    env = {"QISKIT_IBM_TOKEN": "from-env", "QISKIT_IBM_URL": "http://e/api"}
    assert pick(env) == "from-env"  # step 2
    assert pick(env, name="zzz") == "quantum-other"  # step 1
    with pytest.raises(ConfigError):
        select_account("missing", environ={})


def test_legacy_qiskitrc_is_read_last(home: Path) -> None:
    (home / ".qiskit").mkdir()
    (home / ".qiskit" / "qiskitrc").write_text(
        "[ibmq]\ntoken = legacy-token-123\nurl = http://old/api\ndefault_provider = h/g/p\n"
    )
    found = select_account(environ={})
    assert found is not None
    assert found.account == Account("ibm_quantum", "legacy-token-123", "http://old/api", "h/g/p")
    assert not default_account_file().exists()  # reading never writes


@pytest.mark.oldclient
def test_the_real_client_reads_and_writes_the_same_file(home: Path) -> None:
    save_account(quantum(instance="ibm-q/open/main"), name="ours")
    script = """
import json
from qiskit_ibm_runtime.accounts import AccountManager
acct = AccountManager.get(name="ours")
AccountManager.save(token="theirs-token-1234", url="http://x/api", channel="ibm_quantum",
                    name=None, instance="h/g/p")
print(json.dumps([acct.channel, acct.url, acct.instance, acct.verify, acct.token == EXPECTED]))
""".replace("EXPECTED", repr(TOKEN))
    done = subprocess.run(
        [require_old_python(), "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        "ibm_quantum",
        "http://127.0.0.1:8000/api",
        "ibm-q/open/main",
        True,
        True,
    ]
    theirs = load_account("default-ibm-quantum")
    assert theirs == Account("ibm_quantum", "theirs-token-1234", "http://x/api", "h/g/p")


# -- qrt account -----------------------------------------------------------------------------------


def invoke(args: list[str], **kw: Any) -> Any:
    return CliRunner().invoke(accounts_cli.account, args, **kw)


def test_cli_save_list_delete() -> None:
    args = ["save", "--channel", "ibm_quantum", "--url", "http://127.0.0.1:8000/api"]
    done = invoke([*args, "--token", TOKEN, "--set-default"])
    assert done.exit_code == 0, done.output
    assert "Saved account 'default-ibm-quantum' (default)" in done.output
    assert TOKEN not in done.output
    listed = invoke(["list"])
    assert listed.exit_code == 0
    assert "default-ibm-quantum  ibm_quantum  http://127.0.0.1:8000/api" in listed.output
    assert "****CRET" in listed.output and TOKEN not in listed.output
    as_json = json.loads(invoke(["list", "--json"]).output)
    assert as_json == [
        {
            "channel": "ibm_quantum",
            "default": True,
            "instance": None,
            "name": "default-ibm-quantum",
            "token": "****CRET",
            "url": "http://127.0.0.1:8000/api",
        }
    ]
    again = invoke([*args, "--token", TOKEN])
    assert isinstance(again.exception, ConfigError)
    assert invoke(["delete", "default-ibm-quantum"]).exit_code == 0
    assert isinstance(invoke(["delete", "default-ibm-quantum"]).exception, ConfigError)
    assert "No saved accounts" in invoke(["list"]).output


@pytest.mark.parametrize("how", ["env", "prompt", "stdin"])
def test_cli_token_off_the_command_line(how: str) -> None:
    args = ["save", "--name", "n", "--channel", "ibm_quantum", "--url", "http://h/api"]
    if how == "env":
        done = invoke(args, env={"QISKIT_IBM_TOKEN": TOKEN})
    elif how == "prompt":
        done = invoke(args, input=TOKEN + "\n")
    else:
        done = invoke([*args, "--token", "-"], input=TOKEN + "\n")
    assert done.exit_code == 0, done.output
    assert TOKEN not in done.output
    assert load_account("n").token == TOKEN


def test_cli_cloud_without_crn_explains() -> None:
    done = invoke(["save", "--token", TOKEN, "--url", "http://h/api"])
    assert isinstance(done.exception, ConfigError)
    assert "--channel ibm_quantum" in str(done.exception)


# -- qrt backends / programs / jobs ----------------------------------------------------------------


class FakeRuntime:
    """Only what the listing commands call (a unit-test fake, not a Runtime)."""

    def backends(self, names: Collection[str] | None = None) -> list[BackendInfo]:
        return [BackendInfo("aer_simulator", 29), BackendInfo("fake_noisy_5q", 5, noisy=True)]

    def programs(self, *, limit: int | None = None, skip: int = 0) -> list[ProgramInfo]:
        found = [ProgramInfo("hello-abc", "hello", max_execution_time=300, is_public=True)]
        return found[:limit]

    def jobs(self, **filters: Any) -> list[JobInfo]:
        self.filters = filters
        return [JobInfo("j1", "hello-abc", "FAILED", "aer_simulator", tags=("a", "b"))]


def cli_with(runtime: FakeRuntime) -> click.Group:
    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = SimpleNamespace(open_runtime=lambda: runtime)

    for command in (accounts_cli.backends, accounts_cli.programs, accounts_cli.jobs):
        root.add_command(command)
    return root


def test_runtime_listings() -> None:
    runtime = FakeRuntime()
    root = cli_with(runtime)
    runner = CliRunner()
    out = runner.invoke(root, ["backends"]).output
    assert out.splitlines()[0].split() == ["NAME", "QUBITS", "SIMULATOR", "NOISY", "OPERATIONAL"]
    assert out.splitlines()[2].split() == ["fake_noisy_5q", "5", "yes", "yes", "yes"]
    assert json.loads(runner.invoke(root, ["backends", "--json"]).output)[0]["num_qubits"] == 29
    out = runner.invoke(root, ["programs"]).output
    assert "hello-abc  hello  public" in out
    done = runner.invoke(root, ["jobs", "--tag", "a", "--tag", "b", "--final", "--limit", "5"])
    assert done.exit_code == 0, done.output
    assert "j1  hello-abc  FAILED" in done.output and "a,b" in done.output
    assert runtime.filters == {
        "limit": 5,
        "program_id": None,
        "backend": None,
        "tags": ("a", "b"),
        "pending": False,
        "session_id": None,
    }
    assert json.loads(runner.invoke(root, ["jobs", "--json"]).output)[0]["tags"] == ["a", "b"]
