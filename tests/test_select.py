"""Which runtime a project gets: --account, qrt.yaml target, env, saved default, embedded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qrt_apply.errors import ConfigError
from qrt_apply.runtime.accounts import Account, save_account
from qrt_apply.runtime.base import Target
from qrt_apply.runtime.http import HttpRuntime
from qrt_apply.runtime.select import EMBEDDED_TARGET, choose_target, describe_target, open_runtime

URL = "http://127.0.0.1:8000/api"
ENV = {"QISKIT_IBM_TOKEN": "env-token-123456", "QISKIT_IBM_URL": URL}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


def target(project: Path, **kw: Any) -> Target:
    kw.setdefault("environ", {})
    return describe_target(project, **kw)


def token_of(project: Path, **kw: Any) -> str:
    kw.setdefault("environ", {})
    account = choose_target(project, **kw).account
    assert account is not None
    return account.token


def test_nothing_configured_is_embedded(project: Path) -> None:
    assert target(project) == EMBEDDED_TARGET == Target("embedded", ".qrt")
    choice = choose_target(project, environ={})
    assert choice.embedded and "embedded" in choice.source
    assert not (project / ".qrt").exists()  # describing opens nothing


def test_order_account_then_yaml_then_env_then_saved(project: Path) -> None:
    save_account(Account("ibm_quantum", "saved-default-123", url=URL), set_as_default=True)
    save_account(Account("ibm_quantum", "named-1234567", url="http://other:1/api"), name="n")
    assert token_of(project) == "saved-default-123"
    assert (
        token_of(project, environ=ENV | {"QISKIT_IBM_CHANNEL": "ibm_quantum"})
        == ENV["QISKIT_IBM_TOKEN"]
    )
    config = {"target": {"account": "n"}}
    assert token_of(project, environ=ENV, config=config) == "named-1234567"
    assert target(project, environ=ENV, config={"target": "embedded"}) == EMBEDDED_TARGET
    assert token_of(project, account="n", config={"target": "embedded"}) == "named-1234567"
    assert target(project, account="n") == Target("ibm_quantum", "http://other:1/api", None)


def test_yaml_channel_url_takes_its_token_from_env_or_a_matching_account(project: Path) -> None:
    config = {"target": {"channel": "ibm_quantum", "url": URL + "/", "instance": "ibm-q/open/main"}}
    assert target(project, config=config) == Target("ibm_quantum", URL, "ibm-q/open/main")
    with pytest.raises(ConfigError, match="needs a token"):
        choose_target(project, config=config, environ={})
    # env token only when QISKIT_IBM_URL is unset or the same url: never sent elsewhere
    assert token_of(project, config=config, environ={"QISKIT_IBM_TOKEN": "e-123456"}) == "e-123456"
    with pytest.raises(ConfigError):
        choose_target(
            project, config=config, environ={"QISKIT_IBM_TOKEN": "e", "QISKIT_IBM_URL": "http://x"}
        )
    save_account(Account("ibm_quantum", "other-url-1234", url="http://x/api"), name="a")
    save_account(Account("ibm_quantum", "plain-12345678", url=URL), name="b")
    save_account(
        Account("ibm_quantum", "hgp-123456789", url=URL, instance="ibm-q/open/main"), name="c"
    )
    assert token_of(project, config=config) == "hgp-123456789"
    config["target"]["instance"] = "h/g/p"
    assert token_of(project, config=config) == "plain-12345678"
    account = choose_target(project, config=config, environ={}).account
    assert account is not None and account.instance == "h/g/p"  # qrt.yaml instance wins


def test_yaml_account_with_instance_override(project: Path) -> None:
    save_account(Account("ibm_quantum", "t-123456789", url=URL, instance="a/b/c"), name="x")
    config = {"target": {"account": "x", "instance": "d/e/f"}}
    assert target(project, config=config) == Target("ibm_quantum", URL, "d/e/f")


@pytest.mark.parametrize(
    ("target_value", "message"),
    [
        (["embedded"], "must be 'embedded'"),
        ({"channel": "embedded", "url": "x"}, "takes no other keys"),
        ({"acount": "x"}, "unknown key 'acount'"),
        ({"channel": "ibm_quantum"}, "needs channel"),
        ({"account": "x", "url": URL}, "either account or channel/url"),
        ({"account": 3}, "account must be a string"),
        ({"account": "missing"}, "no saved account named 'missing'"),
    ],
)
def test_bad_yaml_targets(project: Path, target_value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        choose_target(project, config={"target": target_value}, environ={})


def test_reads_qrt_yaml_when_no_config_is_given(project: Path) -> None:
    (project / "qrt.yaml").write_text(f"target:\n  channel: ibm_quantum\n  url: {URL}\n")
    assert target(project, environ=ENV) == Target("ibm_quantum", URL, None)
    (project / "qrt.yaml").write_text("target: embedded\n")
    assert target(project, environ=ENV) == EMBEDDED_TARGET
    (project / "qrt.yaml").write_text("target: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        target(project)


def test_open_runtime_http_is_lazy_and_tokenless_in_its_target(project: Path) -> None:
    save_account(Account("ibm_quantum", "t-0123456789", url="http://127.0.0.1:9/api"), name="x")
    runtime = open_runtime(project, account="x", environ={})
    try:
        assert isinstance(runtime, HttpRuntime)
        assert runtime.target == Target("ibm_quantum", "http://127.0.0.1:9/api", None)
        assert "t-0123456789" not in repr(runtime) + repr(runtime.target.to_json())
    finally:
        runtime.close()


def test_open_runtime_embedded(project: Path) -> None:
    runtime = open_runtime(project, environ={})
    try:
        assert runtime.target == EMBEDDED_TARGET
        assert (project / ".qrt").is_dir()
        assert runtime.programs() == []
    finally:
        runtime.close()


def test_public_surfaces() -> None:
    import importlib

    for name in (
        "accounts",
        "accounts_cli",
        "http",
        "http_auth",
        "http_parse",
        "http_wire",
        "select",
    ):
        module = importlib.import_module(f"qrt_apply.runtime.{name}")
        assert module.__doc__ and module.__all__
        assert all(hasattr(module, attr) for attr in module.__all__), name
