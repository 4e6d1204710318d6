"""Nothing a target does can hang a check or the deploy watch (issue #10 item 6).

httpx's timeouts are per operation: a server that sends one byte every half second never trips them. These tests put
such a server (a raw socket server in a thread, below) behind a check, the watch's Prometheus reads and the watch's
API probe, and measure: a check is an ERROR at its timeout AND its thread lets go of the connection then (the runner
abandons a timed-out body's thread, so the body must end on its own); `firing_alerts` and the error-rate query end
within their deadline; a watch poll ends within its budget, so the rollback criteria are evaluated every poll and a
hung API rolls the release back on time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import select
import socket
import ssl
import threading
import time

import httpx
import pytest

from golive.tasks.catalog import load_catalog
from golive.tasks.core import CheckSpec, Redactor, RunContext, Status, execute
from golive.tasks.core import select as select_checks

CATALOG = load_catalog()
SLACK = 2.5  # seconds past a deadline a busy 2-core machine may take to notice it (1.1-1.6 s seen in CI)


class Trickle:
    """A TCP server answering every connection one byte at a time, every `interval` s, for up to `limit` s.

    mode "headers": the status line and headers trickle (the client blocks before any response exists);
    mode "body": the headers arrive at once, then an endless JSON body trickles;
    mode "flood": the headers, then an endless body as fast as the socket takes it;
    mode "relay": bytes from `upstream` (a real TLS server) trickle to the client, the client's go through at once.
    With `tls` (a server context), the TLS handshake is at full speed and the HTTP bytes trickle inside it.
    `released` records, per connection, how long after accepting it the client closed it."""

    def __init__(
        self,
        mode: str,
        interval: float = 0.5,
        limit: float = 40.0,
        upstream: tuple[str, int] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.mode, self.interval, self.limit, self.upstream, self.tls = mode, interval, limit, upstream, tls
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.released: list[float] = []
        self.accepted = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.srv.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        t0 = time.monotonic()
        if self.tls is not None:
            conn.settimeout(5)
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                return
        up = socket.create_connection(self.upstream) if self.mode == "relay" else None
        if up is not None:
            threading.Thread(target=self._pump, args=(conn, up), daemon=True).start()
        else:
            self._read_request(conn)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        if self.mode in ("body", "flood"):
            conn.sendall(head)
        out = head if self.mode == "headers" else b'{"status": "success", "data": {"alerts": [' + b" " * 10**8
        i = 0
        try:
            while time.monotonic() - t0 < self.limit and not self._stop.is_set():
                if self.mode == "flood":
                    conn.sendall(b" " * 65536)
                    continue
                data = up.recv(1) if up is not None else out[i : i + 1]
                if not data:
                    break
                i += 1
                conn.sendall(data)
                readable, _, _ = select.select([conn], [], [], self.interval)
                if readable and up is None and not conn.recv(4096):  # the client hung up
                    self.released.append(time.monotonic() - t0)
                    return
        except OSError:  # reset by the client
            self.released.append(time.monotonic() - t0)
        finally:
            conn.close()
            if up is not None:
                up.close()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        self.released.append(-1.0)  # the client's side ended (relay: how long is not measured here)

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        conn.settimeout(5)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk

    def close(self) -> None:
        self._stop.set()
        self.srv.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A trustme CA: (server context for 127.0.0.1, the CA's PEM file)."""
    import trustme

    authority = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return server_ctx, str(ca_file)


@pytest.fixture
def trickle():
    servers: list[Trickle] = []

    def make(mode: str, **kw) -> Trickle:
        servers.append(Trickle(mode, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def config(**sections):
    from golive.flows.config import GoliveConfig

    return GoliveConfig.model_validate({"environment": "deadlines", **sections})


def run(check_id: str, cfg, timeout: float):
    spec = dataclasses.replace(CATALOG[check_id], timeout=timeout)
    return asyncio.run(execute(spec, cfg, redact=Redactor()))


def wait_released(server: Trickle, n: int, by: float) -> list[float]:
    """The server's record of its connections released, waiting until `by` seconds after the call at most."""
    end = time.monotonic() + by
    while len(server.released) < n and time.monotonic() < end:
        time.sleep(0.05)
    return server.released


def check_threads(check_id: str, by: float) -> list[threading.Thread]:
    """The runner's threads of `check_id` still alive `by` seconds from now at most."""
    end = time.monotonic() + by
    while (alive := [t for t in threading.enumerate() if t.name == f"check:{check_id}"]) and time.monotonic() < end:
        time.sleep(0.05)
    return alive


# --------------------------------------------------------------------------- (a) every check, through the runner


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_trickling_server_is_an_error_at_the_timeout_and_the_check_lets_go_of_it(trickle, ca, mode):
    srv = trickle(mode, tls=ca[0])
    t0 = time.monotonic()
    r = run("application.api.health", config(web={"base_url": srv.url, "ca_file": ca[1]}), timeout=2.0)
    took = time.monotonic() - t0
    assert r.status == Status.ERROR and took < 2.0 + SLACK, (r.status, r.summary, took)
    # the runner abandoned the body's thread at its timeout: the body itself must end there, not read on forever
    released = wait_released(srv, 1, by=SLACK)
    assert released and released[0] < 2.0 + SLACK, (
        f"the abandoned check thread still held the trickling connection {time.monotonic() - t0:.1f}s after start"
    )
    assert not check_threads("application.api.health", by=SLACK)


@pytest.mark.timeout(60)
def test_a_flooding_server_is_read_to_a_bound_not_to_the_end_of_memory(trickle, ca):
    from golive.tasks.clients import http as tls

    srv = trickle("flood", limit=30, tls=ca[0])
    t0 = time.monotonic()
    r = run("application.api.health", config(web={"base_url": srv.url, "ca_file": ca[1]}), timeout=20.0)
    assert r.status == Status.ERROR and f"more than {tls.MAX_HTTP_BYTES >> 20} MiB" in r.summary, r.summary
    assert time.monotonic() - t0 < 15, "the whole flood was read"


@pytest.mark.timeout(60)
def test_a_trickled_tls_handshake_is_cut_at_the_deadline(trickle, ca):
    """A TLS handshake trickled one byte at a time ends at the deadline, in the TLS probe's own handshake and in the
    HTTPS client's: CPython bounds a handshake as a whole by the socket's timeout (measured: also true before #10),
    and both pass what is left of the check's budget."""
    server_ctx, ca_file = ca
    tls_srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = tls_srv.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: _handshake_quietly(server_ctx, c), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        for check_id in ("infrastructure.tls.chain", "application.api.health"):
            relay = trickle("relay", interval=0.05, upstream=tls_srv.getsockname())
            cfg = config(web={"base_url": f"https://127.0.0.1:{relay.port}", "ca_file": ca_file})
            t0 = time.monotonic()
            r = run(check_id, cfg, timeout=2.0)
            assert r.status == Status.ERROR and time.monotonic() - t0 < 2.0 + SLACK, (check_id, r.summary)
            wait_released(relay, 1, by=SLACK)
            assert relay.released and time.monotonic() - t0 < 2.0 + 2 * SLACK, (
                f"{check_id}: the abandoned thread still holds the trickled handshake"
            )
    finally:
        tls_srv.close()


def _handshake_quietly(ctx: ssl.SSLContext, conn: socket.socket) -> None:
    try:
        with ctx.wrap_socket(conn, server_side=True) as s:
            s.recv(1)
    except OSError:
        pass


# --------------------------------------------------------------------------- (b) the watch's Prometheus reads


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["headers", "body"])
def test_firing_alerts_ends_within_its_deadline(trickle, mode):
    """The one Prometheus client (tasks/clients/prometheus.py), as the deploy watch calls it: a server trickling its
    headers or its body is given up at the caller's deadline, a timeout the watch records (never a hang)."""
    from types import SimpleNamespace

    from golive.tasks.clients.prometheus import firing_alerts

    srv = trickle(mode)
    t0 = time.monotonic()
    with pytest.raises(httpx.TimeoutException, match="timed out|deadline passed"):
        firing_alerts(SimpleNamespace(prometheus_url=srv.url, ca_file=None), RunContext(timeout=2.0))
    assert time.monotonic() - t0 < 2.0 + SLACK


@pytest.mark.timeout(60)
def test_the_error_rate_query_ends_within_the_poll_budget_and_a_flood_is_refused(trickle):
    from golive.flows.deploy import _error_rate
    from golive.flows.watch import MAX_ANSWER_BYTES, poll_budget

    pol = {"command": ["true"], "error_rate_query": "sum(rate(errors[1m]))", "poll_seconds": 0.5}
    cfg = config(monitoring={"prometheus_url": trickle("body").url}, deploy=pol)
    t0 = time.monotonic()
    with pytest.raises(httpx.TimeoutException, match="timed out|deadline passed"):
        asyncio.run(_error_rate(cfg, cfg.deploy))
    assert time.monotonic() - t0 < poll_budget(cfg.deploy) + SLACK
    # a flood is cut at the watch's cap (8 MiB, below the 64 MiB a check may read), never read to the end
    flood = config(monitoring={"prometheus_url": trickle("flood").url}, deploy=pol)
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadError, match=f"more than {MAX_ANSWER_BYTES >> 20} MiB"):
        asyncio.run(_error_rate(flood, flood.deploy))
    assert time.monotonic() - t0 < poll_budget(cfg.deploy) + SLACK


@pytest.mark.timeout(60)
def test_a_trickling_deploy_webhook_fails_the_step_at_its_timeout(trickle):
    from golive.flows.deploy import run_step

    srv = trickle("body")
    t0 = time.monotonic()
    step = asyncio.run(run_step.fn("deploy", None, srv.url, "1.0.0", None, 2.0, "no-such-key"))
    assert not step.ok and step.detail == "timed out after 2s: the webhook did not answer", step
    assert time.monotonic() - t0 < 2.0 + SLACK


# --------------------------------------------------------------------------- (c) the deploy watch, poll by poll


@pytest.mark.timeout(120)
def test_the_watch_evaluates_every_poll_and_rolls_back_a_hung_api_on_time(trickle, ca):
    """The watch's loop (flows/deploy.py), poll by poll, with the API and Prometheus both trickling: every poll ends
    within its budget, the hung API counts as not responding, and the CRITICAL criterion trips on the second poll."""
    from golive.flows.deploy import _firing, _monitoring, _probe
    from golive.flows.watch import Watch, alert_signals, check_signals, poll_budget

    api, prom = trickle("headers", limit=60, tls=ca[0]), trickle("body", limit=60)
    cfg = config(
        web={"base_url": api.url, "ca_file": ca[1]},
        monitoring={"prometheus_url": prom.url},
        deploy={"command": ["true"], "poll_seconds": 0.5, "api_down_seconds": 1, "high_checks": []},
    )
    pol, redact = cfg.deploy, Redactor()
    api_ids, db_ids = ["application.api.health"], ["dependencies.postgres.reachable"]
    specs: dict[str, CheckSpec] = select_checks(CATALOG, ids=[*api_ids, *db_ids])

    async def watch_until_trip():
        watch, polls, start = Watch(pol), [], time.monotonic()
        while time.monotonic() - start < 60:
            t0 = time.monotonic()
            results, firing = await asyncio.gather(
                _probe(specs, cfg, redact), _monitoring(cfg, pol, redact, watch, "alerts query", _firing)
            )
            polls.append(round(time.monotonic() - t0, 2))
            trip = watch.evaluate(
                time.monotonic(), check_signals(pol, results, api_ids, db_ids) + alert_signals(pol, firing or []), None
            )
            if trip is not None:
                return trip, polls, time.monotonic() - start, watch
            await asyncio.sleep(pol.poll_seconds)
        return None, polls, time.monotonic() - start, watch

    trip, polls, took, watch = asyncio.run(watch_until_trip())
    budget = poll_budget(pol)
    assert polls and max(polls) < budget + SLACK, f"a poll outlived its {budget:g}s budget: {polls}"
    assert trip is not None and trip.severity == "CRITICAL" and trip.criterion.startswith("API not responding"), trip
    assert len(polls) == 2 and took < 2 * (budget + SLACK) + pol.poll_seconds, (polls, took)
    assert any(m.startswith("alerts query failed: ReadTimeout") for m in watch.medium), watch.medium
