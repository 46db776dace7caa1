"""How qrt reaches IBM Quantum Platform (the v1 API): IAM bearer tokens, the API base, the headers.

Facts from ``shared/reference/iqp-rest-api.md`` (qiskit-ibm-runtime 0.51.0 as recorded):

* **Token.** The account's token is an IBM Cloud API key. It is exchanged at IAM for a bearer
  token: ``POST {iam}/identity/token``, form-encoded
  ``grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=KEY&response_type=cloud_iam``; the
  answer's ``access_token`` is a JWT whose ``exp`` and ``iat`` claims (read, never verified: IAM
  signs them, qrt only needs the times) say when it expires. Like ibm-cloud-sdk-core, a token is
  renewed once 80 % of its lifetime has passed, so it never expires during a call. Without those
  claims ``expiration`` (epoch seconds) or ``expires_in`` of the answer is used.
* **IAM URL.** ``IAM_URL`` from the environment (``/identity/token`` appended), as the official
  client reads it; else ``https://iam.cloud.ibm.com`` (``https://iam.test.cloud.ibm.com`` for a
  CRN whose cname is ``staging``).
* **API base.** An account ``url`` containing ``experimental`` is used as it is (the official
  client's escape hatch, which points both it and qrt at a test server); else
  ``https://quantum.{host}/api/v1`` for the CRN region ``us-east`` and
  ``https://{region}.quantum.{host}/api/v1`` for any other, ``host`` being the url's host name
  (``cloud.ibm.com`` by default).
* **Headers** of every API call: ``Authorization: Bearer TOKEN``, ``Service-CRN: CRN`` and
  ``IBM-API-Version`` (the value 0.51.0 sends).

Neither the API key nor a bearer token is ever logged or put in an error message: both are handed
to the wire as secrets, which replaces them by ``***``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlparse

from qrt_apply.errors import AuthError, ConfigError, RuntimeApiError
from qrt_apply.runtime.accounts import Account
from qrt_apply.runtime.http_wire import Wire

__all__ = [
    "IBM_API_VERSION",
    "IamTokens",
    "api_base_url",
    "crn_fields",
    "iam_token_url",
]

IBM_API_VERSION = "2026-04-15"
IAM_GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
_DEFAULT_IAM = "https://iam.cloud.ibm.com"
_STAGING_IAM = "https://iam.test.cloud.ibm.com"
_RENEW_AT = 0.8  # of a token's lifetime


@dataclass(frozen=True)
class CrnFields:
    cname: str
    region: str


def crn_fields(crn: str | None) -> CrnFields:
    """The cname and region of an instance CRN (``crn:v1:CNAME:public:quantum-computing:REGION:...``)."""
    parts = (crn or "").split(":")
    if len(parts) < 7 or parts[0] != "crn" or not parts[5]:
        raise ConfigError(
            f"instance {crn!r} is not an instance CRN "
            "(crn:v1:bluemix:public:quantum-computing:REGION:a/ACCOUNT:INSTANCE::)"
        )
    return CrnFields(cname=parts[2], region=parts[5])


def api_base_url(account: Account) -> str:
    """Where the account's v1 API calls go (see the module docstring)."""
    url = account.resolved_url.rstrip("/")
    if "experimental" in url:
        return url
    region = crn_fields(account.instance).region
    host = urlparse(url).hostname or "cloud.ibm.com"
    prefix = "" if region == "us-east" else f"{region}."
    return f"https://{prefix}quantum.{host}/api/v1"


def iam_token_url(account: Account, environ: Mapping[str, str]) -> str:
    """``IAM_URL`` (as the official client reads it) or IBM Cloud's IAM, plus ``/identity/token``."""
    base = environ.get("IAM_URL") or ""
    if not base:
        staging = crn_fields(account.instance).cname == "staging"
        base = _STAGING_IAM if staging else _DEFAULT_IAM
    return base.rstrip("/") + "/identity/token"


def _jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (only its times are read); {} when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class IamTokens:
    """The bearer token of one API key, fetched on first use and renewed before it expires.

    ``clock`` is wall-clock time in seconds (token times are epoch seconds). Thread-safe: one fetch
    at a time, every thread gets the current token."""

    def __init__(
        self,
        wire: Wire,
        api_key: str,
        token_url: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._wire = wire
        self._api_key = api_key
        self.token_url = token_url
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._old: list[str] = []

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every value to keep out of messages: the key and each token handed out."""
        current = (self._token,) if self._token else ()
        return (self._api_key, *current, *self._old)

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the API refused it); the next :meth:`token` fetches a new one."""
        with self._lock:
            if self._token == token:
                self._renew_at = 0.0

    def _fetch(self) -> None:
        form = urlencode(
            {
                "grant_type": IAM_GRANT_TYPE,
                "apikey": self._api_key,
                "response_type": "cloud_iam",
            }
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        try:
            response = self._wire.request("POST", self.token_url, headers=headers, content=form)
        except AuthError as exc:
            message = f"IBM Cloud IAM refused the API key: {exc.message}"
            raise AuthError(message, status=exc.status) from None
        except RuntimeApiError as exc:
            if exc.status == 400:  # IAM answers 400 to an unknown or malformed API key
                raise AuthError(
                    f"IBM Cloud IAM refused the API key: {exc.message}", status=400
                ) from None
            raise
        try:
            body = response.json()
        except ValueError:
            body = None
        access = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access, str) or not access:
            raise AuthError(f"POST {self.token_url}: the answer has no access_token")
        assert isinstance(body, dict)
        now = self._clock()
        claims = _jwt_claims(access)
        expires = _number(claims.get("exp")) or _number(body.get("expiration"))
        issued = _number(claims.get("iat"))
        if expires is None:
            lifetime = _number(body.get("expires_in")) or 3600.0
            issued, expires = now, now + lifetime
        if issued is None or issued > expires:
            issued = min(now, expires)
        if self._token is not None and self._token != access:
            self._old.append(self._token)  # still redacted if it shows up in a late message
        self._token = access
        self._renew_at = issued + _RENEW_AT * (expires - issued)
