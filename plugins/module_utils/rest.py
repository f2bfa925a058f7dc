# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A small JSON-over-HTTP client for the REST APIs the collection talks to.

Built on ansible.module_utils.urls so modules need nothing beyond ansible-core. It adds what
every caller needs and nobody should write twice: TLS verification on by default with an
optional CA bundle, bearer token and extra headers (for gateways that put auth in front of an
API), timeouts, and retries with exponential backoff and full jitter for idempotent requests.
Errors carry the status and the server's `detail`, never the request headers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import random
import socket
import time

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlencode
from ansible.module_utils.urls import Request, make_context

try:  # Python 3
    from http.client import HTTPException
except ImportError:  # pragma: no cover - Python 2
    from httplib import HTTPException  # type: ignore

RETRYABLE_STATUS = (500, 502, 503, 504)
IDEMPOTENT_METHODS = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")


class RestError(Exception):
    """An HTTP error answer (status set) or a transport failure (status None)."""

    def __init__(self, message, status=None, detail=None, url=None, ambiguous=False):
        super(RestError, self).__init__(message)
        self.status = status
        self.detail = detail
        self.url = url
        # True when the request may have reached the server and been acted on (timeout or
        # connection dropped after sending, or a 5xx): a non-idempotent caller must check.
        self.ambiguous = ambiguous


def backoff_delays(attempts, base=0.5, cap=30.0, rng=None):
    """Full-jitter exponential backoff: for attempt n, a random delay in [0, min(cap, base*2**n)]."""
    rng = rng or random.Random()
    for n in range(attempts):
        yield rng.uniform(0, min(cap, base * (2**n)))


class RestClient:
    def __init__(
        self,
        base_url,
        token=None,
        headers=None,
        validate_certs=True,
        ca_path=None,
        timeout=30,
        retries=5,
        backoff_base=0.5,
        backoff_cap=10.0,
        sleep=time.sleep,
        rng=None,
        user_agent=None,
    ):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.headers = dict(headers or {})
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.user_agent = user_agent or "dataflywheel.blueprint"
        self.requests_made = 0
        self.via = None  # how the base URL was found, when it was not given (e.g. a port-forward)
        self._tls_context = None

    def tls_context(self):
        """One TLS context per client. open_url() builds a new one for every request, loading every
        system CA certificate each time (about 0.2 s of CPU per request, even for plain http)."""
        if self._tls_context is None:
            self._tls_context = make_context(cafile=self.ca_path, validate_certs=self.validate_certs)
        return self._tls_context

    def url(self, path, query=None):
        url = self.base_url + "/" + path.lstrip("/")
        if query:
            url += "?" + urlencode(query)
        return url

    # What a subclass for another API adjusts: statuses worth a retry, the Authorization header,
    # how an error answer reads, and what to do about a failed TLS verification.
    retry_status = RETRYABLE_STATUS
    tls_hint = "Set the CA bundle option (ca_path) to the CA that signed the server certificate."

    def _authorization(self):
        return "Bearer %s" % self.token if self.token else None

    def _headers(self, content_type, extra=None):
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(self.headers)
        headers.update(extra or {})
        authorization = self._authorization()
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def _http_error(self, method, url, status, raw, reason):
        parsed = parse_body(raw)
        detail = parsed.get("detail") if isinstance(parsed, dict) else None
        if detail is None:
            detail = raw.decode("utf-8", "replace")[:500] if raw else reason
        return RestError(
            "%s %s returned HTTP %s: %s" % (method, url, status, _flatten(detail)),
            status=status,
            detail=detail,
            url=url,
            ambiguous=status >= 500,
        )

    def _transport_error(self, method, url, reason, tls):
        if tls:
            return RestError("TLS verification of %s failed: %s. %s" % (url, reason, self.tls_hint), url=url)
        # Refused before sending is not ambiguous; anything after connect may have been processed.
        refused = isinstance(reason, ConnectionRefusedError) or "refused" in str(reason).lower()
        via = " (reached through %s)" % self.via if self.via else ""
        return RestError("%s %s%s failed: %s" % (method, url, via, reason), url=url, ambiguous=not refused)

    def send_once(
        self, method, path, body=None, query=None, timeout=None, raw_body=None, content_type=None, headers=None
    ):
        """One request; returns (status, parsed JSON or None). Raises RestError (or the subclass's).
        `raw_body` with `content_type` sends bytes as they are (e.g. NDJSON) instead of JSON;
        `headers` are added to this request only (e.g. Content-Encoding)."""
        url = self.url(path, query)
        if raw_body is not None:
            data = raw_body
        elif body is not None:
            data, content_type = json.dumps(body).encode("utf-8"), "application/json"
        else:
            data, content_type = None, None
        self.requests_made += 1
        try:
            resp = Request().open(
                method,
                url,
                data=data,
                headers=self._headers(content_type, headers),
                validate_certs=self.validate_certs,
                ca_path=self.ca_path,
                timeout=timeout or self.timeout,
                http_agent=self.user_agent,
                follow_redirects="safe",
                context=self.tls_context(),
            )
            raw = resp.read()
            return resp.getcode(), parse_body(raw)
        except HTTPError as err:
            raise self._http_error(method, url, err.code, _read(err), err.reason) from None
        except (URLError, socket.timeout, HTTPException, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise self._transport_error(method, url, reason, _is_tls_error(reason)) from None

    def request(
        self,
        method,
        path,
        body=None,
        query=None,
        retry=None,
        timeout=None,
        raw_body=None,
        content_type=None,
        headers=None,
    ):
        """A request, retried on transport errors and retry_status answers when it is safe to
        (idempotent methods, or retry=True). Returns (status, data)."""
        method = method.upper()
        if retry is None:
            retry = method in IDEMPOTENT_METHODS
        delays = backoff_delays(self.retries, self.backoff_base, self.backoff_cap, self.rng) if retry else iter(())
        while True:
            try:
                return self.send_once(
                    method,
                    path,
                    body=body,
                    query=query,
                    timeout=timeout,
                    raw_body=raw_body,
                    content_type=content_type,
                    headers=headers,
                )
            except RestError as err:
                if err.status is not None and err.status not in self.retry_status:
                    raise
                if err.status is None and "TLS verification" in str(err):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise
                self.sleep(delay)


def _read(err):
    try:
        return err.read() or b""
    except Exception:  # noqa: BLE001 - a broken error body must not hide the status
        return b""


def parse_body(raw):
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return {"detail": raw.decode("utf-8", "replace")[:500]}


def _flatten(detail):
    if isinstance(detail, list):  # FastAPI 422: [{loc, msg, type}, ...]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append("%s: %s" % (loc, item.get("msg")) if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def _is_tls_error(reason):
    text = str(reason)
    return (
        "CERTIFICATE_VERIFY_FAILED" in text
        or "certificate verify failed" in text
        or "SSLError" in type(reason).__name__
    )
