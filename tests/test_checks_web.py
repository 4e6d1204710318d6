"""The web checks (the `web` component: its infrastructure, application, security and performance checks) against
real HTTPS servers.

PASS cases run against the shared sandbox, its web faults in tests/test_faults.py (except the certificate near
expiry, here); the failure modes it has no switch for run against small dedicated servers started here (a hung port,
a refused port, a slow app, a wrong CA, a certificate for another host, HTML error pages, a temporary redirect).
"""

from __future__ import annotations

import time

import pytest
import trustme

from golive.flows.config import parse_config
from golive.tasks.core import Status
from tests.support.checks import as_json, assert_no_secrets, run_ids, run_one, sandbox_config, with_
from tests.support.servers import (
    APP_PASSWORD,
    APP_USER,
    APPROVED_ORIGIN,
    ServerThread,
    hung_server,
    make_certs,
    redirect_app,
    refused_port,
    web_app,
)

WEB_IDS = [
    "infrastructure.web.reachable",
    "infrastructure.tls.chain",
    "infrastructure.tls.expiry",
    "infrastructure.http.redirect",
    "application.api.health",
    "application.api.endpoints",
    "application.api.errors",
    "application.frontend.title",
    "security.headers.hsts",
    "security.api.auth_required",
    "security.cors.origins",
    "performance.api.latency_p95",
]


# --------------------------------------------------------------------------- the sandbox


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


def test_sandbox_web_passes_every_check(cfg):
    res = run_ids(WEB_IDS, cfg)
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in WEB_IDS}, {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    reach = res["infrastructure.web.reachable"].observed
    assert reach["status"] == 200 and len(reach["samples_ms"]) == 3
    chain = res["infrastructure.tls.chain"].observed
    assert chain["verified"] is True and "IP:127.0.0.1" in chain["sans"] and "golive sandbox" in chain["issuer"]
    assert 360 <= float(res["infrastructure.tls.expiry"].observed.split()[0]) <= 366
    assert res["infrastructure.http.redirect"].observed.startswith("301 Location: https://")
    assert res["application.frontend.title"].observed["title"] == "SwipeSavvy"
    assert set(res["application.api.endpoints"].observed.values()) == {200}
    assert res["security.api.auth_required"].observed == {"without credentials": 401, "with credentials": 200}
    assert "(none)" in res["security.cors.origins"].observed["https://evil.example"]
    assert res["performance.api.latency_p95"].details["requests"] == 20
    for r in res.values():
        assert r.evidence and r.expected is not None, r.id
    assert_no_secrets(res, cfg)


def test_sandbox_certificate_near_expiry_fails_expiry_not_chain(sandbox, cfg):
    with sandbox.fault("tls-expiry"):
        res = run_ids(["infrastructure.tls.chain", "infrastructure.tls.expiry"], cfg)
    assert res["infrastructure.tls.chain"].status == Status.PASS
    exp = res["infrastructure.tls.expiry"]
    assert exp.status == Status.FAIL and exp.expected == ">= 30 days"
    assert 9 <= float(exp.observed.split()[0]) <= 10.1


def test_sandbox_wrong_title_and_tight_thresholds_fail(cfg):
    r = run_one("application.frontend.title", with_(cfg, "web", expected_title="SwipeSavvy Admin"))
    assert r.status == Status.FAIL and r.observed["title"] == "SwipeSavvy"
    r = run_one("security.headers.hsts", with_(cfg, "web", hsts_min_max_age=63072000))
    assert r.status == Status.FAIL and r.observed == "31536000 s" and r.expected == ">= 63072000 s"
    r = run_one("infrastructure.web.reachable", with_(cfg, "web", max_response_ms=0.01))
    assert r.status == Status.FAIL and r.observed["status"] == 200


# --------------------------------------------------------------------------- dedicated servers


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def own_server(certs):
    state: dict = {}
    with ServerThread(web_app(state), str(certs.cert), str(certs.key)) as srv:
        yield srv, state


@pytest.fixture
def own(own_server):
    """(port, state) of the dedicated HTTPS app, its behaviour reset to healthy for each test."""
    srv, state = own_server
    state.clear()
    state.update(hsts=31536000, title="SwipeSavvy")
    return srv.port, state


def web_config(port: int, ca, **web):
    data = {
        "base_url": f"https://127.0.0.1:{port}/",
        "ca_file": str(ca),
        "expected_title": "SwipeSavvy",
        "approved_origins": [APPROVED_ORIGIN],
        "auth": {"username": APP_USER, "password": APP_PASSWORD},
        "max_response_ms": 2000,
        **web,
    }
    return parse_config({"environment": "test", "web": data}, env={})


# --------------------------------------------------------------------------- probe errors: hung, refused


def test_hung_https_port_is_an_error_within_the_timeout(certs):
    ids = ["infrastructure.web.reachable", "infrastructure.tls.chain"]
    with hung_server() as port:
        t0 = time.monotonic()
        res = run_ids(ids, web_config(port, certs.ca), timeouts={i: 1.5 for i in ids})
        took = time.monotonic() - t0
    for r in res.values():
        assert r.status == Status.ERROR, (r.id, r.status, r.cause)
        assert "time" in r.cause.lower()  # "timed out" from the runner or the socket's own read timeout
        assert r.duration_s < 1.5 + 0.5, (r.id, r.duration_s)
    assert took < 1.5 + 1.0


def test_refused_port_is_an_error_never_a_pass(certs):
    cfg = web_config(refused_port(), certs.ca)
    r = run_one("infrastructure.web.reachable", cfg, timeout=3)
    assert r.status == Status.ERROR and ("refused" in r.cause.lower() or "connect" in r.cause.lower()), r.cause
    for cid in ("infrastructure.tls.chain", "infrastructure.tls.expiry"):  # the same refusal: web.reachable's failure
        r = run_one(cid, cfg, timeout=3)
        assert r.status == Status.SKIPPED and r.details["blocked_by"] == "infrastructure.web.reachable", (cid, r.status)
        assert "refused" in r.cause, r.cause


def test_dependents_of_an_unreachable_web_are_skipped_naming_it(certs):
    with hung_server() as port:
        cfg = web_config(port, certs.ca)
        ids = [
            "infrastructure.web.reachable",
            "application.api.health",
            "security.headers.hsts",
            "performance.api.latency_p95",
        ]
        res = run_ids(ids, cfg, timeouts={"infrastructure.web.reachable": 1.0})
    assert res["infrastructure.web.reachable"].status == Status.ERROR
    for cid in ids[1:]:
        assert res[cid].status == Status.SKIPPED
        assert "infrastructure.web.reachable is ERROR" in res[cid].cause
        assert res[cid].details["root_cause"] == "infrastructure.web.reachable"


# --------------------------------------------------------------------------- dedicated: what the sandbox can't do


def test_slow_first_response_fails_reachability(own, certs):
    port, state = own
    state["slow_ms"] = 150
    r = run_one("infrastructure.web.reachable", web_config(port, certs.ca, max_response_ms=100))
    assert r.status == Status.FAIL
    assert r.observed["status"] == 200 and r.observed["time_to_first_response_ms"] >= 150
    state["slow_ms"] = 0
    r = run_one("infrastructure.web.reachable", web_config(port, certs.ca, max_response_ms=2000))
    assert r.status == Status.PASS and r.observed["time_to_first_response_ms"] < 2000


def test_untrusted_chain_fails_but_expiry_is_still_read(own, certs):
    port, _ = own
    cfg = web_config(port, certs.other_ca)  # a CA that did not sign the server's certificate
    chain = run_one("infrastructure.tls.chain", cfg)
    assert chain.status == Status.FAIL
    assert chain.observed["verified"] is False and "issuer" in chain.observed["verify_error"]
    assert "IP:127.0.0.1" in chain.observed["sans"]
    expiry = run_one("infrastructure.tls.expiry", cfg)
    assert expiry.status == Status.PASS and expiry.details["chain_verified"] is False
    assert expiry.observed.startswith("36")  # ~365 days read from the unverified leaf
    # and the HTTPS request itself refuses the untrusted certificate: an error, not a pass
    r = run_one("infrastructure.web.reachable", cfg)
    assert r.status == Status.ERROR and "certificate" in r.cause.lower()


def test_certificate_for_another_host_fails_the_chain(tmp_path, certs):
    ca = trustme.CA()
    leaf = ca.issue_cert("other.example")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with ServerThread(web_app({}), str(tmp_path / "c.pem"), str(tmp_path / "k.pem")) as srv:
        r = run_one("infrastructure.tls.chain", web_config(srv.port, tmp_path / "ca.pem"))
    assert r.status == Status.FAIL
    assert "mismatch" in r.observed["verify_error"].lower() or "match" in r.observed["verify_error"].lower()
    assert r.observed["sans"] == ["DNS:other.example"]


def test_short_lived_certificate_fails_expiry(certs):
    with ServerThread(web_app({}), str(certs.short_cert), str(certs.short_key)) as srv:
        cfg = web_config(srv.port, certs.ca)
        r = run_one("infrastructure.tls.expiry", cfg)
        assert r.status == Status.FAIL
        assert r.expected == ">= 30 days" and float(r.observed.split()[0]) < 10.1
        assert run_one("infrastructure.tls.expiry", with_(cfg, "web", min_cert_days=5)).status == Status.PASS


def test_html_error_pages_fail_error_handling(own, certs):
    port, state = own
    cfg = web_config(port, certs.ca)
    assert run_one("application.api.errors", cfg).status == Status.PASS
    state["html_errors"] = True
    r = run_one("application.api.errors", cfg)
    assert r.status == Status.FAIL
    assert r.observed["/api/invalid-endpoint"].startswith("404, not JSON")
    assert r.observed["/api/campaigns"].startswith("401, not JSON")


def test_wrong_web_password_fails_login_and_leaks_nothing(own, certs):
    port, _ = own
    cfg = web_config(port, certs.ca, auth={"username": APP_USER, "password": "definitely-Wrong-pw"})
    res = run_ids(["infrastructure.web.reachable", "application.api.endpoints", "security.api.auth_required"], cfg)
    assert res["application.api.endpoints"].status == Status.FAIL
    assert res["application.api.endpoints"].observed == {"login": "login answered 401"}
    assert res["security.api.auth_required"].status == Status.FAIL
    assert res["security.api.auth_required"].observed["with credentials"] == "login answered 401"
    assert_no_secrets(res, cfg)
    assert "definitely-Wrong-pw" not in as_json(res)


def test_without_auth_endpoints_are_not_applicable(own, certs):
    port, _ = own
    cfg = web_config(port, certs.ca, auth=None)
    r = run_one("application.api.endpoints", cfg)
    assert r.status == Status.NOT_APPLICABLE and "web.auth" in r.cause
    r = run_one("security.api.auth_required", cfg)  # the anonymous half is still measured
    assert r.status == Status.PASS and r.observed == {"without credentials": 401}


def test_temporary_redirect_fails_and_no_http_url_is_not_applicable(own, certs):
    port, _ = own
    state = {"to": f"https://127.0.0.1:{port}", "code": 302}
    with ServerThread(redirect_app(state)) as http:
        cfg = web_config(port, certs.ca, http_url=f"http://127.0.0.1:{http.port}/")
        r = run_one("infrastructure.http.redirect", cfg)
        assert r.status == Status.FAIL and r.observed.startswith("302")
        state["code"] = 308
        assert run_one("infrastructure.http.redirect", cfg).status == Status.PASS
    r = run_one("infrastructure.http.redirect", web_config(port, certs.ca))
    assert r.status == Status.NOT_APPLICABLE and "http_url" in r.cause


def test_slow_api_fails_the_p95_probe(own, certs):
    port, state = own
    state["slow_ms"] = 30
    cfg = web_config(port, certs.ca, p95_max_ms=20, probe_requests=5)
    r = run_one("performance.api.latency_p95", cfg)
    assert r.status == Status.FAIL and r.severity.value == "advisory"
    assert r.details["requests"] == 5 and min(r.details["samples_ms"]) >= 30
    assert "connections used: 1" in r.evidence  # one keep-alive connection


def test_a_ca_the_system_store_gains_while_golive_runs_is_trusted_by_the_next_check(tmp_path, monkeypatch):
    # `golive serve` runs for weeks: an OS update (update-ca-certificates) that adds the company's new CA must not
    # leave every HTTPS check failing until someone restarts it
    from cryptography import x509

    from golive.tasks.clients.http import trust_context

    bundle = tmp_path / "ca-certificates.crt"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # the system store OpenSSL reads (its documented override)
    before = trust_context(http=True)
    assert before is trust_context(http=True) and len(before.get_ca_certs()) == 1
    new_ca = trustme.CA()
    bundle.write_bytes(bundle.read_bytes() + new_ca.cert_pem.bytes())
    after = trust_context(http=True)
    assert after is not before and len(after.get_ca_certs()) == 2
    serial = x509.load_pem_x509_certificate(new_ca.cert_pem.bytes()).serial_number
    assert int(after.get_ca_certs()[1]["serialNumber"], 16) == serial


def test_the_trust_store_is_loaded_once_per_ca_file_version(tmp_path):
    """Loading the system store costs ~19 ms of CPU: one shared context per CA file's content, a new one when the
    file changes (a CA replaced while golive runs is trusted as it is now), and a bad file still refused."""
    import os
    import ssl

    from golive.tasks.clients.http import trust_context

    assert trust_context() is trust_context()
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    first = trust_context(ca_file)
    assert first is trust_context(str(ca_file)) and first is not trust_context()
    trustme.CA().cert_pem.write_to_path(str(ca_file))  # another CA under the same name
    st = ca_file.stat()
    os.utime(ca_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = trust_context(ca_file)
    assert second is not first
    assert len(second.get_ca_certs()) == len(first.get_ca_certs())  # one extra CA each, not both
    ca_file.write_text("not a certificate")
    with pytest.raises(ssl.SSLError):
        trust_context(ca_file)
    # the httpx clients' own: ALPN set once, never again (OpenSSL copies it without the GIL, threads share it)
    http = trust_context(http=True)
    assert http is trust_context(http=True) and http is not trust_context()
    http.set_alpn_protocols(["http/1.1"])  # what httpcore does at every connection: accepted, nothing changes
    with pytest.raises(ValueError):
        http.set_alpn_protocols(["h2", "http/1.1"])
    with pytest.raises(ValueError):
        http.load_cert_chain(str(ca_file))  # a client certificate would go to every later connection
    assert http.check_hostname and http.verify_mode == ssl.CERT_REQUIRED
    assert http.verify_flags == ssl.create_default_context().verify_flags
