"""How the HTTP client reaches a runtime: the runtime base URL and the headers of runtime calls.

* ``ibm_quantum``: the login flow of qiskit-ibm-provider (reference §2) -- ``GET {url}/version``
  (must be JSON holding ``"api-auth"``), ``POST {url}/users/loginWithToken`` with
  ``{"apiToken": token}`` → ``id`` is the access token, ``GET {url}/users/me`` →
  ``urls.services.runtime`` (the runtime base) and ``urls.http``, ``GET {urls.http}/Network`` → the
  hub/group/project instances (an ``isDefault`` project first; the account's ``instance`` must be
  one of them). Runtime calls then carry ``X-Access-Token: <access token>``; the API token itself
  goes nowhere but the login body.
* ``ibm_cloud``: no login. ``Authorization: apikey <token>`` and ``Service-CRN: <instance>``; the
  instance must be a CRN. The runtime base is ``{scheme}://{location}.quantum-computing.{host}``
  (the location is the CRN's 6th field), or the url unchanged when it contains ``experimental``
  (the real client's escape hatch, handy for local servers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from qrt_apply.errors import AuthError, ConfigError, NotFoundError, RuntimeApiError
from qrt_apply.runtime.accounts import Account
from qrt_apply.runtime.http_wire import Wire

__all__ = ["Connection", "cloud_runtime_url", "connect", "network_instances"]


@dataclass(frozen=True)
class Connection:
    """A logged-in runtime: where to send runtime calls and with which headers."""

    base_url: str
    headers: dict[str, str] = field(repr=False)
    instance: str | None = None  # the hub/group/project in use (ibm_quantum) or the CRN
    secrets: tuple[str, ...] = field(default=(), repr=False)


def _json(response: Any, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RuntimeApiError(f"{what}: the answer is not JSON") from None


def network_instances(hubs: Any) -> list[str]:
    """``hub/group/project`` names of a ``/Network`` answer, ``isDefault`` projects first."""
    defaults: list[str] = []
    others: list[str] = []
    if not isinstance(hubs, list):
        return []
    for hub in hubs:
        if not isinstance(hub, dict):
            continue
        groups = hub.get("groups") or {}
        for group_key, group in groups.items() if isinstance(groups, dict) else ():
            projects = (group or {}).get("projects") or {}
            for project_key, project in projects.items() if isinstance(projects, dict) else ():
                group_name = (group or {}).get("name") or group_key
                project_name = (project or {}).get("name") or project_key
                hgp = f"{hub.get('name')}/{group_name}/{project_name}"
                (defaults if (project or {}).get("isDefault") else others).append(hgp)
    return defaults + others


def cloud_runtime_url(account: Account) -> str:
    """The runtime base URL of an ``ibm_cloud`` account (see the module docstring)."""
    url = account.resolved_url.rstrip("/")
    crn = account.instance or ""
    if not crn.startswith("crn:"):
        raise ConfigError(
            "an ibm_cloud account needs its instance as a CRN (crn:v1:...); "
            "resolving service names through IBM Cloud IAM is not supported"
        )
    if "experimental" in url:
        return url
    parts = crn.split(":")
    location = parts[5] if len(parts) > 5 else ""
    if not location:
        raise ConfigError(f"the CRN {crn!r} has no location field")
    parsed = urlparse(url)
    return f"{parsed.scheme}://{location}.quantum-computing.{parsed.hostname}"


def _login_quantum(wire: Wire, account: Account) -> Connection:
    auth_url = account.resolved_url.rstrip("/")
    version_url = f"{auth_url}/version"
    hint = "; for qrt serve the url is http://HOST:PORT/api"
    try:
        body = wire.request("GET", version_url).json()
    except NotFoundError:
        raise ConfigError(
            f"{auth_url} is not an IBM Quantum authentication URL (GET /version: 404){hint}"
        ) from None
    except ValueError:
        body = None
    if not isinstance(body, dict) or "api-auth" not in body:
        raise ConfigError(
            f"{auth_url} is not an IBM Quantum authentication URL "
            f"(GET /version did not answer JSON with 'api-auth'){hint}"
        )
    login_url = f"{auth_url}/users/loginWithToken"
    login = _json(wire.request("POST", login_url, json_body={"apiToken": account.token}), login_url)
    access = login.get("id") if isinstance(login, dict) else None
    if not isinstance(access, str) or not access:
        raise AuthError(f"POST {login_url} returned no access token")
    headers = {"X-Access-Token": access}
    secrets = (account.token, access)
    me_url = f"{auth_url}/users/me"
    me = _json(wire.request("GET", me_url, headers=headers), me_url)
    urls = me.get("urls") if isinstance(me, dict) else None
    urls = urls if isinstance(urls, dict) else {}
    services = urls.get("services") if isinstance(urls.get("services"), dict) else {}
    runtime = services.get("runtime") if isinstance(services, dict) else None
    if not runtime:
        raise AuthError(f"GET {me_url}: this user is not authorized to use the ibm_quantum runtime")
    http_base = str(urls.get("http") or auth_url).rstrip("/")
    network_url = f"{http_base}/Network"
    instances = network_instances(
        _json(wire.request("GET", network_url, headers=headers), network_url)
    )
    if not instances:
        raise AuthError(f"GET {network_url}: the account has no hub/group/project instance")
    if account.instance is not None and account.instance not in instances:
        raise ConfigError(
            f"instance {account.instance!r} is not available to this account "
            f"(available: {', '.join(instances)})"
        )
    instance = account.instance or instances[0]
    return Connection(str(runtime).rstrip("/"), headers, instance, secrets)


def connect(wire: Wire, account: Account) -> Connection:
    """Log in (ibm_quantum) or compute the cloud headers; see the module docstring."""
    account.validate()
    if account.channel == "ibm_quantum":
        return _login_quantum(wire, account)
    base = cloud_runtime_url(account)
    headers = {"Authorization": f"apikey {account.token}", "Service-CRN": str(account.instance)}
    return Connection(base, headers, account.instance, (account.token,))
