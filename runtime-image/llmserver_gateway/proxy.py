"""Forwarding one request to a replica or provider, with retries only while nothing was sent.

A connection error, or a 429/502/503 answer, before the first byte reaches the client is retried on
another ready endpoint (at most `max_retries` more). Once bytes went out the request is never
repeated: a failure mid-stream ends the stream with an OpenAI-shaped SSE error event. Streams pass
through chunk by chunk as they arrive; when the client goes away the handler is cancelled and the
upstream connection is closed (not pooled), so the replica stops generating. How an attempt
ended is decided by `outcome` (pure) and reaches metrics and log through one hook, `_record`.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import aiohttp
from aiohttp import web

from llmserver_api import proxy_policy
from llmserver_gateway import balancing, errors, guard, metrics, outcome, settings, table

log = logging.getLogger("llmserver.gateway.proxy")

CLIENT_GONE = "llmserver_client_gone"  # set on a StreamResponse whose client disconnected mid-stream
_PASS_HEADERS = ("Content-Type", "Retry-After")


@dataclasses.dataclass(slots=True)
class _Failure:
    """A failed attempt that sent nothing to the client; `status`/`body` when the upstream answered."""

    reason: str
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class Proxy:
    """Sends requests upstream over one shared aiohttp client session; tenant-written Proxy
    upstreams over `guarded_session`, whose resolver enforces the Proxy host policy."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        balancer: balancing.Balancer,
        gauges: metrics.GatewayMetrics,
        config: settings.GatewaySettings,
        guarded_session: aiohttp.ClientSession | None = None,
        policy: proxy_policy.HostPolicy | None = None,
    ) -> None:
        self.session = session
        self.guarded_session = guarded_session
        self.policy = policy or proxy_policy.HostPolicy()
        self.balancer = balancer
        self.metrics = gauges
        self.max_retries = config.max_retries
        self.max_response_bytes = config.max_response_bytes
        # `connect` bounds the wait for a pooled connection plus opening it; `sock_read` the silence
        # between two reads (first byte or next chunk); the size of what is relayed is bounded below.
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.pool_timeout + config.connect_timeout,
            sock_connect=config.connect_timeout,
            sock_read=config.read_timeout,
        )

    async def forward(
        self, request: web.Request, route: table.Route, path: str, body: bytes, prefix: str | None, started: float
    ) -> web.StreamResponse:
        """Answers `request` from an endpoint of `route`; `path` is the part after `/v1`."""
        tried: list[str] = []
        failure: _Failure | None = None
        for attempt in range(self.max_retries + 1):
            endpoint = self.balancer.pick(route, prefix, tried)
            if endpoint is None:
                break
            if attempt:
                self.metrics.child(self.metrics.retries, route.model).inc()
            tried.append(endpoint.url)
            headers = {"Content-Type": "application/json"}
            if endpoint.api_key:
                headers["Authorization"] = f"Bearer {endpoint.api_key}"
            result = await self._attempt(
                request, route.model, endpoint.url, f"{endpoint.url}/v1{path}", headers, body, started,
                adapter=route.adapter_of is not None,
            )
            if not isinstance(result, _Failure):
                return result
            failure = result
        return self._give_up(route, failure, len(tried))

    async def forward_upstream(
        self, request: web.Request, route: table.Route, path: str, body: bytes, started: float
    ) -> web.StreamResponse:
        """Proxy mode: `body` already names the provider's model; the provider's key is added; one attempt."""
        upstream = route.upstream
        assert upstream is not None
        headers = {"Content-Type": "application/json"}
        if upstream.api_key:
            headers["Authorization"] = f"Bearer {upstream.api_key}"
        url = f"{upstream.url}{path}"
        session = self.session
        if upstream.guarded:
            why = self.policy.check_url(url)
            if why is not None or self.guarded_session is None:
                why = why or "no guarded client session"
                self._record(route.model, upstream.url, outcome.not_allowed(why))
                return _not_allowed(route.model)
            session = self.guarded_session
        result = await self._attempt(request, route.model, upstream.url, url, headers, body, started, session)
        if isinstance(result, _Failure):
            return self._give_up(route, result, 1)
        return result

    async def _attempt(
        self,
        request: web.Request,
        model: str,
        endpoint: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        started: float,
        session: aiohttp.ClientSession | None = None,
        adapter: bool = False,
    ) -> web.StreamResponse | _Failure:
        """One try against one endpoint. Returns a _Failure only while nothing was sent to the client."""
        gauge = self.metrics.child(self.metrics.in_flight, model, endpoint)
        self.metrics.child(self.metrics.upstream_requests, model, endpoint).inc()
        self.balancer.acquire(endpoint)
        gauge.inc()
        upstream: aiohttp.ClientResponse | None = None
        ended: outcome.Outcome | None = None  # stays None when the handler is cancelled (client gone)
        try:
            try:
                upstream = await (session or self.session).post(
                    url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if (refused := guard.refusal(exc)) is not None:
                    ended = outcome.not_allowed(refused)
                    return _not_allowed(model)
                ended = outcome.of_error(exc, outcome.Stage.CONNECT)
                return _unsent(model, ended, exc)
            answered = outcome.of_status(upstream.status, "Authorization" in headers, adapter)
            if answered.kind is outcome.Kind.RETRY:
                failure = _Failure(f"status {upstream.status}", upstream.status, headers=_passed(upstream))
                try:
                    failure.body = await upstream.read()
                except (TimeoutError, aiohttp.ClientError):
                    pass
                ended = answered
                return failure
            if answered.kind is outcome.Kind.AUTH_REFUSED:
                ended = answered
                return errors.response(
                    502, f"The upstream of model `{model}` refused the gateway's credentials; "
                    "check the key configured for it.", "server_error", code="upstream_auth_failed")
            if upstream.content_type == "text/event-stream":
                response, ended = await self._relay_stream(request, upstream, model, started)
                return response
            try:
                data = await _read_bounded(upstream, self.max_response_bytes)
            except (TimeoutError, aiohttp.ClientError) as exc:
                ended = outcome.of_error(exc, outcome.Stage.BODY)
                return _unsent(model, ended, exc)
            if data is None:
                ended = outcome.TOO_LARGE
                return errors.response(
                    502, f"The upstream of model '{model}' answered more than the gateway relays "
                    f"({self.max_response_bytes} bytes).", "server_error", code="upstream_response_too_large")
            self.metrics.child(self.metrics.ttfb, model).observe(time.perf_counter() - started)
            ended = outcome.PASSED
            return web.Response(status=upstream.status, body=data, headers=_passed(upstream))
        finally:
            if ended is not None:
                self._record(model, endpoint, ended)
            if upstream is not None:
                if ended is not None and ended.kind is outcome.Kind.PASSED:
                    upstream.release()
                else:
                    upstream.close()  # drop the connection so the replica sees the client is gone
            self.balancer.release(endpoint)
            gauge.dec()

    def _record(self, model: str, endpoint: str, ended: outcome.Outcome) -> None:
        """The one place an attempt's outcome reaches the metrics and the log."""
        if ended.reason is None:
            return
        self.metrics.child(self.metrics.upstream_errors, model, endpoint, ended.reason).inc()
        config_problem = ended.kind in (outcome.Kind.AUTH_REFUSED, outcome.Kind.NOT_ALLOWED)
        level = logging.ERROR if config_problem else logging.WARNING
        log.log(level, "endpoint %s of model %s %s", endpoint, model, ended.detail)

    async def _relay_stream(
        self, request: web.Request, upstream: aiohttp.ClientResponse, model: str, started: float
    ) -> tuple[web.StreamResponse, outcome.Outcome]:
        """Copies an SSE stream chunk by chunk; from here on nothing is retried.

        Returns the response and how the stream ended: PASSED only when it ended cleanly on both
        sides (only then is the upstream connection reused). A client that went away marks the
        response CLIENT_GONE (the caller closes the upstream connection; the request counts as
        499); aiohttp itself tolerates finishing a response on a closed connection.
        """
        response = web.StreamResponse(status=upstream.status, headers=_passed(upstream))
        response.headers["Cache-Control"] = "no-cache"
        broken: outcome.Outcome | None = None
        try:
            await response.prepare(request)
            first = True
            relayed = 0
            content = upstream.content
            while True:
                try:
                    chunk = await content.readany()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    broken = outcome.of_error(exc, outcome.Stage.STREAM)
                    await response.write(errors.sse_error(
                        502, f"The upstream of model '{model}' failed in the middle of the stream.",
                        "upstream_error"))
                    await response.write_eof()
                    return response, broken
                if not chunk:
                    break
                relayed += len(chunk)
                if relayed > self.max_response_bytes:
                    broken = outcome.TOO_LARGE
                    await response.write(errors.sse_error(
                        502, f"The upstream of model '{model}' sent more than the gateway relays "
                        f"({self.max_response_bytes} bytes).", "upstream_response_too_large"))
                    await response.write_eof()
                    return response, broken
                if first:
                    self.metrics.child(self.metrics.ttfb, model).observe(time.perf_counter() - started)
                    first = False
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            response[CLIENT_GONE] = True  # the client left mid-answer (before handler cancellation)
            return response, broken or outcome.CLIENT_GONE  # an upstream failure first still counts
        return response, outcome.PASSED

    def _give_up(self, route: table.Route, failure: _Failure | None, tried: int) -> web.Response:
        if failure is None:
            return errors.no_endpoint(route.model)
        if failure.status is not None:
            # The replica's own answer (e.g. 503 overloaded with Retry-After) is the most useful one.
            return web.Response(status=failure.status, body=failure.body, headers=failure.headers)
        what = "the upstream provider" if route.upstream is not None else f"{tried} endpoint(s)"
        return errors.response(
            502, f"Model '{route.model}': {what} could not be reached ({failure.reason}).",
            "server_error", code="upstream_unavailable")


async def _read_bounded(upstream: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """A non-streamed answer, or None as soon as it is known to be over `limit` bytes."""
    if upstream.content_length is not None and upstream.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await upstream.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _passed(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {name: upstream.headers[name] for name in _PASS_HEADERS if name in upstream.headers}


def _not_allowed(model: str) -> web.Response:
    """502 for a Proxy upstream the host policy refuses; which address and why go to the log only
    (a caller learns nothing about internal names or addresses)."""
    return errors.response(
        502, f"The upstream of model '{model}' is not allowed by the gateway's Proxy host policy.",
        "server_error", code="upstream_not_allowed")


def _unsent(model: str, ended: outcome.Outcome, exc: BaseException) -> web.Response | _Failure:
    """The answer to a failure before anything was sent: 504 for a silent upstream (sending the
    request again would double the load on one that may still be working), else a retryable failure."""
    if ended.kind is outcome.Kind.TIMEOUT:
        return errors.response(504, f"The upstream of model '{model}' did not answer in time.",
                               "server_error", code="upstream_timeout")
    return _Failure(type(exc).__name__)  # the client sees the kind of failure, not internal addresses
