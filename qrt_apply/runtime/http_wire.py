"""One HTTP call to a runtime: retries with backoff and jitter, error mapping, token redaction.

:class:`Wire` wraps an injected ``httpx.Client`` (tests pass one with respx or ``MockTransport``)
and knows nothing of the REST API's paths. What it retries, bounded by :class:`RetryPolicy`
(attempts and total time):

* **429**: after ``Retry-After`` (seconds or an HTTP date) or the backoff delay; the server did not
  act.
* **5xx** (500, 502, 503, 504, 520, 521, 522, 524) and **timeouts / broken connections**: these are
  *ambiguous* -- the server may have acted. Idempotent calls are simply re-sent. A call that must
  not happen twice (``POST /jobs``) passes ``recover``: after each ambiguous failure, and before
  re-sending, the wire waits its backoff delay and calls ``recover()``; a non-None answer (e.g. the
  job found by its idempotency tag) is returned instead of re-sending.
* **connect errors** (nothing was sent): re-sent.

Errors (``qrt_apply.errors``): 401/403 → ``AuthError``, 404 → ``NotFoundError``, 409 →
``ConflictError``, other statuses → ``RuntimeApiError``, unreachable → ``TransportError``. Messages
name the method, the URL, the status and the server's ``{"error": {"message": ...}}``; every secret
the wire was told about (token, access token) is replaced by ``***`` in them.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from qrt_apply.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    RuntimeApiError,
    TransportError,
)

__all__ = ["RETRY_STATUSES", "RetryPolicy", "Wire", "error_for_response", "redact"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 524})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying. Delay before retry ``n`` (1-based): a random value between half and
    all of ``min(max_delay, base_delay * 2 ** (n - 1))``; never beyond ``total_time`` overall."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    total_time: float = 60.0

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(retry - 1, 0))
        return float(ceiling / 2 + rand() * ceiling / 2)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (of 4+ characters) replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _server_message(response: httpx.Response) -> str:
    text = response.text
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            code = error.get("code")
            return f"{error['message']}" + (f" (code {code})" if code not in (None, "") else "")
        if isinstance(error, str) and error:
            return error
        for key in ("message", "detail", "errors"):
            if body.get(key):
                return str(body[key])
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")


def error_for_response(
    response: httpx.Response, method: str, url: str, secrets: Iterable[str] = ()
) -> RuntimeApiError:
    """The qrt error for a non-2xx response (not raised, returned)."""
    status = response.status_code
    detail = _server_message(response)
    message = redact(
        f"{method} {url} failed with HTTP {status}" + (f": {detail}" if detail else ""), secrets
    )
    if status in (401, 403):
        return AuthError(message, status=status)
    if status == 404:
        return NotFoundError(message, status=status)
    if status == 409:
        return ConflictError(message, status=status)
    return RuntimeApiError(message, status=status)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Wire:
    """Sends requests through ``client`` with the retry policy; see the module docstring."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        secrets: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._secrets = secrets

    def redact(self, text: str) -> str:
        return redact(text, self._secrets())

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: str | bytes | None = None,
        timeout: float | httpx.Timeout | None = None,
        ok_after_ambiguous: Container[int] = (),
    ) -> httpx.Response:
        """Send with retries; a 2xx response, or an error raised. A status in
        ``ok_after_ambiguous`` answered to a re-sent request (e.g. 404 to a DELETE whose first try
        timed out) counts as done."""
        outcome = self._loop(
            method, url, params, headers, json_body, content, timeout, ok_after_ambiguous, None
        )
        assert isinstance(outcome, httpx.Response)
        return outcome

    def request_once(
        self,
        method: str,
        url: str,
        recover: Callable[[], T | None] | None,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: str | bytes | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response | T:
        """Like :meth:`request` for a call that must take effect at most once: after an
        ambiguous failure ``recover()`` is asked first, and what it finds is returned instead of
        re-sending. With no ``recover`` (nothing can tell whether the call took effect) an
        ambiguous failure ends it: a ``TransportError`` saying so, and nothing more is sent."""
        if recover is None:
            recover = _cannot_check
        return self._loop(method, url, params, headers, json_body, content, timeout, (), recover)

    def _loop(
        self,
        method: str,
        url: str,
        params: Any,
        headers: Mapping[str, str] | None,
        json_body: Any,
        content: str | bytes | None,
        timeout: float | httpx.Timeout | None,
        ok_after_ambiguous: Container[int],
        recover: Callable[[], T | None] | None,
    ) -> httpx.Response | T:
        policy = self.policy
        started = self._clock()
        ambiguous_before = False
        attempt = 0
        while True:
            attempt += 1
            failure: RuntimeApiError
            wait: float | None = None
            ambiguous = False
            try:
                kwargs: dict[str, Any] = {"params": params, "headers": headers}
                if json_body is not None:
                    kwargs["json"] = json_body
                if content is not None:
                    kwargs["content"] = content
                if timeout is not None:
                    kwargs["timeout"] = timeout
                response = self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:  # timeouts included
                ambiguous = not isinstance(exc, _NOT_SENT)
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                failure = TransportError(self.redact(f"{method} {url}: {reason}"))
            else:
                if response.is_success:
                    return response
                if ambiguous_before and response.status_code in ok_after_ambiguous:
                    return response
                failure = error_for_response(response, method, url, self._secrets())
                if response.status_code not in RETRY_STATUSES:
                    raise failure
                ambiguous = response.status_code != 429
                wait = _retry_after(response)
            ambiguous_before = ambiguous_before or ambiguous
            delay = policy.delay(attempt, self._rand) if wait is None else wait
            elapsed = self._clock() - started
            give_up = attempt >= policy.max_attempts or elapsed + delay > policy.total_time
            if recover is _cannot_check and ambiguous:
                raise TransportError(
                    f"{failure.message}: the outcome is unknown (it may have taken effect) and "
                    "cannot be checked, so it was not sent again",
                    status=failure.status,
                )
            if recover is not None and ambiguous:
                # Wait before looking: a server still finishing the request would be missed.
                self._sleep(delay)
                found = self._recover(recover, method, url, failure)
                if found is not None:
                    return found
                if give_up:
                    raise self._gave_up(failure, attempt, elapsed)
                continue
            if give_up:
                raise self._gave_up(failure, attempt, elapsed)
            self._sleep(delay)

    def _recover(
        self, recover: Callable[[], T | None], method: str, url: str, failure: RuntimeApiError
    ) -> T | None:
        try:
            return recover()
        except RuntimeApiError as exc:
            raise TransportError(
                self.redact(
                    f"{method} {url}: the outcome is unknown ({failure.message}) and checking "
                    f"whether it took effect failed too ({exc.message}); nothing was re-sent"
                )
            ) from None

    def _gave_up(self, failure: RuntimeApiError, attempts: int, elapsed: float) -> RuntimeApiError:
        note = f" (gave up after {attempts} attempt{'s' if attempts > 1 else ''}, {elapsed:.1f}s)"
        kind = type(failure)
        return kind(failure.message + note, status=failure.status)


def _cannot_check() -> None:
    """The ``recover`` of a call whose effect nothing can look up: see :meth:`Wire.request_once`."""
    return None
