"""The check framework itself: timeouts, errors, dependency skipping, redaction, selection, the verdict."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from golive.flows.report import Verdict, build_report, to_junit, to_markdown, verdict_of
from golive.tasks.core import (
    CheckSpec,
    Observation,
    Redactor,
    Severity,
    Status,
    collect_secrets,
    compare,
    run_plain,
    select,
    validate_graph,
)
from golive.tasks.models import Target


def spec(cid, body, *, deps=(), timeout=2.0, severity="blocking", target=None):
    return CheckSpec(
        id=cid,
        title=cid,
        seed=("x",),
        severity=Severity(severity),
        depends_on=tuple(deps),
        timeout=timeout,
        target=target,
        body=body,
    )


def ok(_t, _ctx):
    return compare(5, "<", 10, evidence="measured by ok()", unit="ms")


def boom(_t, _ctx):
    raise ConnectionRefusedError("[Errno 111] Connection refused")


def run(*specs, config=None, redact=None):
    return {r.id: r for r in run_plain({s.id: s for s in specs}, config, redact=redact)}


def test_pass_carries_observed_expected_evidence_and_timing():
    r = run(spec("infrastructure.a.ok", ok))["infrastructure.a.ok"]
    assert r.status == Status.PASS
    assert (r.observed, r.expected, r.evidence) == ("5 ms", "< 10 ms", "measured by ok()")
    assert r.section == "infrastructure" and r.finished_at >= r.started_at and r.duration_s >= 0


def test_exception_is_error_with_message_and_never_raises():
    r = run(spec("infrastructure.a.boom", boom))["infrastructure.a.boom"]
    assert r.status == Status.ERROR
    assert "ConnectionRefusedError" in r.cause and "Connection refused" in r.cause


def test_hung_body_is_error_within_its_timeout():
    release = threading.Event()

    def hang(_t, _ctx):
        release.wait(30)
        return ok(None, None)

    t0 = time.monotonic()
    r = run(spec("infrastructure.a.hang", hang, timeout=0.5))["infrastructure.a.hang"]
    elapsed = time.monotonic() - t0
    release.set()
    assert r.status == Status.ERROR and "timed out after 0.5s" in r.cause
    assert elapsed < 1.5


def test_failed_dependency_skips_dependents_with_root_cause():
    res = run(
        spec("dependencies.db.up", boom),
        spec("data.db.rows", ok, deps=["dependencies.db.up"]),
        spec("data.db.more", ok, deps=["data.db.rows"]),
        spec("data.other.ok", ok),
    )
    assert res["dependencies.db.up"].status == Status.ERROR
    assert res["data.db.rows"].status == Status.SKIPPED
    assert "dependencies.db.up is ERROR" in res["data.db.rows"].cause
    assert res["data.db.more"].status == Status.SKIPPED
    assert "root cause dependencies.db.up ERROR" in res["data.db.more"].cause
    assert res["data.other.ok"].status == Status.PASS


def test_missing_target_is_not_applicable_and_propagates_as_not_applicable():
    class Cfg:
        smtp = None

    res = run(
        spec("dependencies.smtp.up", ok, target="smtp"),
        spec("dependencies.smtp.auth", ok, target="smtp", deps=["dependencies.smtp.up"]),
        config=Cfg(),
    )
    assert res["dependencies.smtp.up"].status == Status.NOT_APPLICABLE
    assert "no `smtp` section" in res["dependencies.smtp.up"].cause
    assert res["dependencies.smtp.auth"].status == Status.NOT_APPLICABLE


def test_the_runner_resolves_a_dotted_target_and_the_needs_and_hands_other_sections_typed():
    """The check contract (issue 13, point 2): a dotted target hands the body that part of the section; `needs` not
    configured (absent, or an empty list) is NOT_APPLICABLE with the standard reason, the body never run; the other
    sections named in `needs` / `uses` arrive as keyword arguments (None for an absent `uses`)."""
    from types import SimpleNamespace as NS

    from golive.tasks.core import check

    seen: dict[str, tuple] = {}

    def body(t, ctx, **others):
        seen[ctx.config.name] = (t, others)
        return compare(1, "==", 1, evidence="e")

    def declared(cid, **kw):
        check(cid, title=cid, seed=["x"], **kw)(body)
        from golive.tasks.core import REGISTRY

        return REGISTRY.pop(cid)

    grafana = NS(url="http://g", dashboards=["a"])
    full = NS(name="full", observability=NS(grafana=grafana, ca_file=None), web=NS(auth=NS(user="u")), redis=None)
    dotted = declared(
        "monitoring.grafana.x", target="observability.grafana", needs={"web.auth": "it logs in"}, uses=["redis"]
    )
    res = run(dotted, config=full)["monitoring.grafana.x"]
    assert res.status == Status.PASS
    assert seen["full"] == (grafana, {"web": full.web, "redis": None})

    for name, cfg, reason in (
        (
            "no-section",
            NS(name="a", observability=None, web=full.web, redis=None),
            "no `observability.grafana` configured",
        ),
        (
            "no-part",
            NS(name="b", observability=NS(grafana=None), web=full.web, redis=None),
            "no `observability.grafana` configured",
        ),
        (
            "no-need",
            NS(name="c", observability=full.observability, web=NS(auth=None), redis=None),
            "no `web.auth` configured: it logs in",
        ),
        (
            "no-web",
            NS(name="d", observability=full.observability, web=None, redis=None),
            "no `web.auth` configured: it logs in",
        ),
    ):
        r = run(dotted, config=cfg)["monitoring.grafana.x"]
        assert (r.status, r.cause) == (Status.NOT_APPLICABLE, reason), name
        assert cfg.name not in seen, f"{name}: the body ran"

    listed = declared("monitoring.grafana.y", target="observability", needs=["observability.grafana.dashboards"])
    grafana.dashboards = []
    r = run(listed, config=full)["monitoring.grafana.y"]
    assert (r.status, r.cause) == (Status.NOT_APPLICABLE, "no `observability.grafana.dashboards` configured")
    with pytest.raises(ValueError, match="not a config key"):
        declared("monitoring.grafana.z", target="observability", needs=["Web Auth"])


def test_every_key_a_check_reads_is_a_field_of_the_config_model():
    """A typo in `target` / `needs` / `uses` would make a check silently NOT_APPLICABLE everywhere: each key names
    a field of GoliveConfig, through the nested models."""
    import typing

    from pydantic import BaseModel

    from golive.flows.catalog import all_checks
    from golive.flows.config import GoliveConfig

    def model_of(annotation):
        for arg in (annotation, *typing.get_args(annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
        return None

    def resolves(key: str) -> bool:
        model = GoliveConfig
        for part in key.split("."):
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                return False
            model = model_of(field.annotation)
        return True

    keys = {
        (s.id, k) for s in all_checks().values() for k in (s.target, *(k for k, _ in s.needs), *s.uses) if k is not None
    }
    assert len(keys) > 250
    assert [(cid, k) for cid, k in sorted(keys) if not resolves(k)] == []


def test_dependents_run_concurrently_after_their_dependency():
    """Proven by overlap, not by a wall-clock bound (a loaded machine stretches every body): each dependent starts
    after its dependency ended, and all five were running at one moment."""
    spans: dict[str, tuple[float, float]] = {}

    def slow(name):
        def body(_t, _ctx):
            t = time.monotonic()
            time.sleep(0.3)
            spans[name] = (t, time.monotonic())
            return ok(None, None)

        return body

    run(
        spec("infrastructure.a.root", slow("root")),
        *[spec(f"infrastructure.b.c{i}", slow(f"c{i}"), deps=["infrastructure.a.root"]) for i in range(5)],
    )
    root_end = spans.pop("root")[1]
    assert len(spans) == 5 and all(start >= root_end for start, _ in spans.values())
    assert max(start for start, _ in spans.values()) < min(end for _, end in spans.values()), spans


class Creds(Target):
    password: SecretStr
    api_key: SecretStr


def test_secrets_are_redacted_from_results_even_when_a_body_leaks_them():
    cfg = Creds(password=SecretStr("hunter2-very-secret"), api_key=SecretStr("sk_live_abc123xyz"))

    def leaky(t, _ctx):
        pw = t.password.get_secret_value()
        return Observation(
            status=Status.FAIL,
            observed=f"login as admin:{pw} failed",
            expected={"key": t.api_key.get_secret_value()},
            evidence=f"postgresql://app:{pw}@db:5432/x and redis://:other@h:6379",
        )

    def raiser(t, _ctx):
        raise RuntimeError(f"auth failed for password {t.password.get_secret_value()}")

    res = run_plain(
        {"security.a.leak": spec("security.a.leak", leaky), "security.a.raise": spec("security.a.raise", raiser)}, cfg
    )
    blob = json.dumps([r.model_dump(mode="json") for r in res])
    assert "hunter2-very-secret" not in blob and "sk_live_abc123xyz" not in blob and ":other@" not in blob
    assert "***" in blob
    assert collect_secrets(cfg) == ["hunter2-very-secret", "sk_live_abc123xyz"]


def test_redactor_masks_url_encoded_forms_and_url_passwords():
    r = Redactor(["p@ss word/1"])
    assert r.text("x=p%40ss%20word%2F1 y=p%40ss+word%2F1") == "x=*** y=***"
    assert r.text("postgresql://u:whatever@h/db") == "postgresql://u:***@h/db"


def test_graph_validation_rejects_unknown_dependency_and_cycles():
    with pytest.raises(ValueError, match="unknown check"):
        validate_graph({"a.b.c": spec("infrastructure.b.c", ok, deps=["nope.x.y"])})
    a = spec("infrastructure.a.a", ok, deps=["infrastructure.a.b"])
    b = spec("infrastructure.a.b", ok, deps=["infrastructure.a.a"])
    with pytest.raises(ValueError, match="cycle"):
        validate_graph({a.id: a, b.id: b})


def test_graph_validation_rejects_a_timing_check_that_would_wait_for_itself():
    # heavy checks wait for the light ones, the light ones for the quiet window, the window for every timing check
    h = dataclasses.replace(spec("infrastructure.a.heavy", ok), heavy=True)
    mid = spec("infrastructure.a.mid", ok, deps=[h.id])
    t = dataclasses.replace(spec("infrastructure.a.timing", ok, deps=[mid.id]), timing=True)
    with pytest.raises(
        ValueError, match=r"timing check 'infrastructure.a.timing' needs the heavy check 'infrastructure.a.heavy'"
    ):
        validate_graph({x.id: x for x in (h, mid, t)})
    both = dataclasses.replace(t, depends_on=(), heavy=True)
    with pytest.raises(ValueError, match="'infrastructure.a.timing' is heavy"):
        validate_graph({both.id: both})
    validate_graph({x.id: x for x in (h, mid, dataclasses.replace(t, depends_on=()))})  # apart, they are fine


def test_select_pulls_in_dependencies():
    specs = {
        s.id: s
        for s in [
            spec("dependencies.db.up", ok),
            spec("data.db.rows", ok, deps=["dependencies.db.up"]),
            spec("team.x.y", ok),
        ]
    }
    assert set(select(specs, sections=["data"])) == {"data.db.rows", "dependencies.db.up"}
    with pytest.raises(KeyError):
        select(specs, sections=["nope"])


def test_verdict_rules_and_renderers():
    res = run(spec("infrastructure.a.ok", ok), spec("performance.a.slow", boom, severity="advisory"))
    assert verdict_of(list(res.values())) == Verdict.GO_WITH_WARNINGS
    res2 = run(spec("infrastructure.a.bad", boom))
    from datetime import datetime, timezone

    rep = build_report(
        list(res.values()) + list(res2.values()), environment="t", mode="ci", started_at=datetime.now(UTC)
    )
    assert rep.verdict == Verdict.NO_GO and rep.verdict.exit_code == 2
    assert [s.verdict for s in rep.sections] == [Verdict.NO_GO, Verdict.GO_WITH_WARNINGS]
    md = to_markdown(rep)
    assert "NO-GO" in md and "infrastructure.a.bad" in md
    import xml.etree.ElementTree as ET

    root = ET.fromstring(to_junit(rep).split("?>", 1)[1])
    assert root.get("tests") == "3"
    assert len(root.findall(".//error")) == 2 and len(root.findall(".//testcase")) == 3


def test_heavy_checks_wait_for_the_light_ones_that_do_not_need_them():
    order: list[str] = []

    def rec(name, delay=0.0):
        def body(_t, _ctx):
            time.sleep(delay)
            order.append(name)
            return ok(None, None)

        return body

    heavy = CheckSpec(
        id="backup.restore.test",
        title="t",
        seed=("x",),
        severity=Severity.BLOCKING,
        depends_on=(),
        timeout=2,
        target=None,
        body=rec("heavy"),
        heavy=True,
    )
    after = spec("backup.recovery.rto", rec("rto"), deps=["backup.restore.test"])
    run(heavy, after, spec("infrastructure.web.latency", rec("latency", 0.3)), spec("team.a.b", rec("quick")))
    assert order.index("heavy") > order.index("latency") and order.index("heavy") > order.index("quick")
    assert order[-1] == "rto"  # a light check that needs the heavy one is not waited for (no deadlock)


def test_timing_checks_run_alone_after_their_prerequisites_and_before_everything_else():
    """The quiet window: what timing checks need, then the timing checks one at a time, then the rest."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def rec(name, delay=0.05):
        def body(_t, _ctx):
            with lock:
                events.append(("start", name))
            time.sleep(delay)
            with lock:
                events.append(("end", name))
            return ok(None, None)

        return body

    def timing(cid, body, deps=()):
        return CheckSpec(
            id=cid,
            title=cid,
            seed=("x",),
            severity=Severity.BLOCKING,
            depends_on=tuple(deps),
            timeout=2,
            target=None,
            body=body,
            timing=True,
        )

    specs = [
        spec("dependencies.pg.reachable", rec("reachable", 0.1)),
        timing("dependencies.pg.latency", rec("pg-latency"), deps=["dependencies.pg.reachable"]),
        timing("dependencies.redis.ping", rec("ping")),
        timing("dependencies.redis.lag", rec("lag"), deps=["dependencies.redis.ping"]),  # timing on timing
        spec("security.a.b", rec("other")),
        spec("team.a.b", rec("other2")),
        spec("dependencies.pg.tables", rec("tables"), deps=["dependencies.pg.reachable"]),
    ]
    res = run(*specs)
    assert all(r.status == Status.PASS for r in res.values()), res
    pos = {e: i for i, e in enumerate(events)}
    timed = ["pg-latency", "ping", "lag"]
    # one at a time: every timing check ends before the next one starts
    spans = sorted((pos[("start", n)], pos[("end", n)]) for n in timed)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), events
    # they start only once the prerequisite has landed, and nothing else runs before they are all done
    first_timing = min(s for s, _ in spans)
    last_timing = max(e for _, e in spans)
    assert pos[("end", "reachable")] < first_timing
    for other in ("other", "other2", "tables"):
        assert pos[("start", other)] > last_timing, events


def test_a_timing_check_whose_prerequisite_failed_is_skipped_without_waiting_for_the_window():
    specs = [
        spec("dependencies.pg.reachable", boom),
        CheckSpec(
            id="dependencies.pg.latency",
            title="t",
            seed=("x",),
            severity=Severity.BLOCKING,
            depends_on=("dependencies.pg.reachable",),
            timeout=2,
            target=None,
            body=ok,
            timing=True,
        ),
        spec("team.a.b", ok),
    ]
    res = run(*specs)
    assert res["dependencies.pg.latency"].status == Status.SKIPPED
    assert res["team.a.b"].status == Status.PASS


@pytest.mark.timeout(30)  # a quiet window never released would hang the second timing check: fail, not hang
def test_a_bug_in_the_runner_is_the_checks_error_redacted_and_the_others_still_run(monkeypatch):
    """The runner itself raising for one check (here its gate, for a timing check holding the quiet window's turn)
    is that check's ERROR, the text redacted, and every other check still runs (the light ones wait for every
    timing check to be done with the quiet window: the failed one's result, posted, gives its turn back; the
    timeout makes that a failure, not a hang); an exception whose message itself cannot be rendered is still named.
    `run_plain` used to raise out of the run with no result at all (the flow with no verdict)."""
    from golive.tasks import core

    secret = "s3cr3t-token-for-the-runner-test"
    real_gate = core.gate

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no str either")

    def gate(spec_, deps, board):
        if spec_.id == "dependencies.pg.latency":
            raise ValueError(f"bug near {secret}")
        if spec_.id == "team.a.d":
            raise Unprintable()
        return real_gate(spec_, deps, board)

    monkeypatch.setattr(core, "gate", gate)
    latency = dataclasses.replace(spec("dependencies.pg.latency", ok), timing=True)
    ping = dataclasses.replace(spec("dependencies.redis.ping", ok), timing=True)
    plan = (latency, ping, spec("team.a.b", ok), spec("team.a.c", ok, deps=("team.a.b",)), spec("team.a.d", ok))
    res = run(*plan, redact=Redactor([secret]))
    bad = res["dependencies.pg.latency"]
    assert bad.status == Status.ERROR and bad.cause.startswith("golive's engine failed running it: ValueError: bug")
    assert secret not in json.dumps([r.model_dump(mode="json") for r in res.values()])
    assert res["team.a.d"].status == Status.ERROR and "Unprintable (its message could not be rendered)" in (
        res["team.a.d"].cause
    )
    assert [res[i].status for i in ("dependencies.redis.ping", "team.a.b", "team.a.c")] == [Status.PASS] * 3


@pytest.mark.timeout(30)
def test_nothing_run_checks_started_outlives_it():
    """Cancelled (the deploy flow's re-check past its deadline), `run_checks` takes every check it started with it,
    a timing check's probe holding the quiet window too (the hold's wait did not pass the cancellation on: the
    probe went on after "nothing deploys"), and they have ended by the time it returns."""
    import asyncio

    from golive.tasks.core import Board, make_result, run_checks

    seen: dict[str, str] = {}

    async def executor(s):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen[s.id] = "cancelling"
            await asyncio.sleep(0.05)  # (its clean-up takes a moment: run_checks must wait for it)
            seen[s.id] = "cancelled"
            raise
        seen[s.id] = "finished"
        return make_result(s, Status.PASS, started=datetime.now(UTC), t0=time.monotonic())

    ttfb = dataclasses.replace(spec("infrastructure.web.ttfb", ok), timing=True)
    specs = {s.id: s for s in (ttfb, spec("dependencies.redis.up", ok))}

    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(run_checks(specs.values(), Board(specs), executor, redact=Redactor()), 0.2)
        return dict(seen)

    assert asyncio.run(main()) == {"infrastructure.web.ttfb": "cancelled"}  # (the other one never started)


def test_a_hung_timing_check_holds_the_quiet_window_only_briefly():
    from golive.tasks.core import QUIET_HOLD_S

    release = threading.Event()
    started: dict[str, float] = {}
    t0 = time.monotonic()

    def hang(_t, _ctx):
        release.wait(5)
        return ok(None, None)

    def mark(name):
        def body(_t, _ctx):
            started[name] = time.monotonic() - t0
            return ok(None, None)

        return body

    def timing(cid, body, timeout=2.0):
        return CheckSpec(
            id=cid,
            title=cid,
            seed=("x",),
            severity=Severity.BLOCKING,
            depends_on=(),
            timeout=timeout,
            target=None,
            body=body,
            timing=True,
        )

    try:
        res = run(
            timing("infrastructure.web.ttfb", hang, timeout=1.5),
            timing("dependencies.redis.ping", mark("ping")),
            spec("security.a.b", mark("other")),
        )
    finally:
        release.set()
    assert res["infrastructure.web.ttfb"].status == Status.ERROR
    assert res["dependencies.redis.ping"].status == res["security.a.b"].status == Status.PASS
    # the other timing check and the rest did not wait for the hung one's 1.5 s timeout
    assert started["ping"] < 1.2 and started["other"] < 1.2, started
    assert min(started.values()) >= QUIET_HOLD_S * 0.9, started


def test_the_first_result_of_a_check_is_its_result():
    """A check still running when its section was given up on (landed ERROR) must not change the report later."""
    from golive.tasks.core import Board, make_result

    s = spec("team.a.b", ok)
    board = Board({s.id: s})
    seen = []
    board.listeners.append(seen.append)
    first = make_result(s, Status.ERROR, started=datetime.now(UTC), t0=time.monotonic(), cause="given up on")
    board.post(first)
    board.post(make_result(s, Status.PASS, started=datetime.now(UTC), t0=time.monotonic()))
    assert board.results[s.id] is first and seen == [first]


def test_checks_let_go_together_start_slow_ones_first_then_the_longest_chain():
    """When the quiet window closes, and when the last light check lands (the heavy ones), the checks waiting start
    in priority order: `slow` ones first, then those with the longest chain of checks waiting on them (the run's
    critical path), whatever their order in the plan."""
    import asyncio
    import dataclasses

    from golive.tasks.core import Board, make_result, run_checks

    started: list[str] = []

    async def executor(s):  # records the order checks are handed to the executor (the order their bodies start)
        started.append(s.id)
        await asyncio.sleep(0.01)
        return make_result(s, Status.PASS, started=datetime.now(UTC), t0=time.monotonic(), observed=1, expected=1)

    def mk(cid, deps=(), **flags):
        return dataclasses.replace(spec(cid, ok, deps=deps), **flags)

    plan = [
        mk("application.a.leaf"),  # first in the plan and by name: nothing waits for it
        mk("monitoring.a.head"),
        mk("monitoring.a.mid", deps=["monitoring.a.head"]),
        mk("monitoring.a.tail", deps=["monitoring.a.mid"]),
        mk("security.a.audit", slow=True),
        mk("backup.a.small", heavy=True),
        mk("backup.a.after", deps=["backup.a.small"]),
        mk("backup.a.big", heavy=True, slow=True),
        mk("infrastructure.web.ttfb", timing=True),
    ]
    specs = {s.id: s for s in plan}

    async def main():
        return await run_checks(plan, Board(specs), executor, redact=Redactor())

    asyncio.run(main())
    assert started[0] == "infrastructure.web.ttfb"  # the quiet window first
    light = [i for i in started if i in ("application.a.leaf", "monitoring.a.head", "security.a.audit")]
    assert light == ["security.a.audit", "monitoring.a.head", "application.a.leaf"], started
    heavy = [i for i in started if i in ("backup.a.small", "backup.a.big")]
    assert heavy == ["backup.a.big", "backup.a.small"], started
    assert started.index("backup.a.big") > started.index("monitoring.a.tail")  # heavy after every light check


def test_the_engine_groups_a_sections_checks_whatever_they_wait_for():
    """One Prefect task run per section, named by its subject (`backup.s3`) or by its section and subjects, whatever
    its checks wait for and whatever their phase (the task runs only record: the bodies run from the run's board); a
    suite's expectations keep their own, and so does a check alone in its section."""
    import dataclasses

    from golive.flows.engine import by_section

    def mk(cid, deps=(), **flags):
        return dataclasses.replace(spec(cid, ok, deps=deps), **flags)

    plan = [
        mk("backup.s3.reachable"),
        mk("backup.s3.size", deps=["backup.s3.reachable"]),
        mk("backup.s3.restore", deps=["backup.s3.reachable"], heavy=True),
        mk("backup.s3.report", deps=["backup.s3.restore"]),  # needs a heavy one
        mk("backup.code.tag"),
        mk("dependencies.redis.up"),
        mk("dependencies.redis.ping", deps=["dependencies.redis.up"], timing=True),
        mk("data.users.a", deps=["dependencies.redis.up"], group="data.users"),
        mk("data.users.b", deps=["dependencies.redis.up"], group="data.users"),
        mk("data.rows.count", deps=["dependencies.redis.up"]),
        mk("team.a.x"),
        mk("team.a.y", deps=["team.a.x"]),
        mk("team.c.audit", slow=True),
    ]
    specs = {s.id: s for s in plan}
    groups = {i: s.group for i, s in by_section(specs).items()}
    backup = ("backup.s3.reachable", "backup.s3.size", "backup.s3.restore", "backup.s3.report", "backup.code.tag")
    assert {groups[i] for i in backup} == {"backup: s3, code"}  # light, heavy, and needing a heavy one: together
    assert groups["dependencies.redis.up"] == groups["dependencies.redis.ping"] == "dependencies.redis"  # timing too
    assert {groups[i] for i in ("team.a.x", "team.a.y", "team.c.audit")} == {"team: a, c"}  # and `slow`
    assert groups["data.users.a"] == groups["data.users.b"] == "data.users"  # a suite's group is kept
    assert groups["data.rows.count"] is None  # alone in its section (beside the suite): its own task run


def test_a_groups_name_stays_short_and_unique():
    import dataclasses

    from golive.flows.engine import _group_name, by_section

    name = _group_name("dependencies", [f"dependencies.service{n}.up" for n in range(12)])
    assert name.startswith("dependencies: service0, service1") and name.endswith(" more") and len(name) <= 70
    # a name already taken (a suite's group, a check id) gets a number
    plan = [
        dataclasses.replace(spec("team.a.x", ok), group="team.a"),
        dataclasses.replace(spec("team.a.y", ok), group="team.a"),
        spec("team.b.x", ok, deps=["team.a.x"]),
        spec("team.a.z", ok, deps=["team.a.x"]),
        spec("team.a.w", ok, deps=["team.a.x"]),
    ]
    specs = {s.id: s for s in plan}
    groups = {i: s.group for i, s in by_section(specs).items()}
    assert groups["team.b.x"] == groups["team.a.z"] == groups["team.a.w"] == "team: b, a"
    plan[2] = spec("team.a.v", ok, deps=["team.a.x"])
    specs = {s.id: s for s in plan}
    groups = {i: s.group for i, s in by_section(specs).items()}
    assert groups["team.a.v"] == groups["team.a.z"] == "team.a #2" and groups["team.a.x"] == "team.a"


def test_a_check_excluded_by_the_config_loses_its_scheduling_flags():
    """`checks.skip` lands a check NOT_APPLICABLE at once: it is no longer heavy, timing or slow (a skipped restore
    must not hold the quiet window or go first among the light checks)."""
    from golive.flows.catalog import all_checks, with_policy
    from golive.flows.config import parse_config

    skip = ["backup.restore.test", "security.dependencies.vulnerabilities", "infrastructure.web.reachable"]
    specs = with_policy(parse_config({"environment": "t", "checks": {"skip": skip}}), all_checks())
    assert all(all_checks()[i].slow or all_checks()[i].timing for i in skip)  # (what the test is about)
    for i in skip:
        assert not (specs[i].slow or specs[i].heavy or specs[i].timing or specs[i].group), i


def test_what_waits_for_the_window_itself_goes_after_the_checks_it_lets_go():
    """The readiness flow starts its section subflows once the quiet window has closed: what waits for the window
    itself resumes after the checks it lets go, so their bodies start before nine subflows' start-ups."""
    import asyncio
    import dataclasses

    from golive.tasks.core import Board

    plan = [
        dataclasses.replace(spec("infrastructure.web.ttfb", ok), timing=True),
        dataclasses.replace(spec("security.a.audit", ok), slow=True),
    ]
    board = Board({s.id: s for s in plan})
    order: list[str] = []

    async def main():
        async def subflows():
            await board.quiet_window_closed()
            order.append("subflows")

        async def held():
            await board.wait_quiet_window("security.a.audit")
            order.append("slow check")

        tasks = [asyncio.ensure_future(subflows()), asyncio.ensure_future(held())]
        await asyncio.sleep(0)
        board.release("infrastructure.web.ttfb")
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == ["slow check", "subflows"]


def test_the_checks_the_window_lets_go_go_slow_first_then_the_longest_chain_first():
    """When the quiet window closes, the checks it held go in priority order: `slow` ones first (their bodies are
    long), then those with the longest chain of checks waiting on them."""
    import asyncio
    import dataclasses

    from golive.tasks.core import Board

    plan = [
        dataclasses.replace(spec("infrastructure.web.ttfb", ok), timing=True),
        spec("application.a.leaf", ok),
        spec("monitoring.a.head", ok),
        spec("monitoring.a.tail", ok, deps=["monitoring.a.head"]),
        dataclasses.replace(spec("security.a.audit", ok), slow=True),
    ]
    board = Board({s.id: s for s in plan})
    order: list[str] = []

    async def main():
        async def held(cid):
            await board.wait_quiet_window(cid)
            order.append(cid)

        tasks = [
            asyncio.ensure_future(held(i)) for i in ("application.a.leaf", "monitoring.a.head", "security.a.audit")
        ]
        await asyncio.sleep(0)
        assert order == []  # the window has not closed: they wait
        board.release("infrastructure.web.ttfb")
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == ["security.a.audit", "monitoring.a.head", "application.a.leaf"]


def test_a_listener_that_raises_changes_no_result():
    """Board listeners only display (the CLI's progress lines): one that fails, say on a closed pipe, neither breaks
    the run nor keeps a result from its dependents."""

    def broken(_r):
        raise BrokenPipeError(32, "Broken pipe")

    specs = {s.id: s for s in (spec("team.a.b", ok), spec("team.a.c", ok, deps=["team.a.b"]))}
    res = {r.id: r for r in run_plain(specs, None, on_result=broken)}
    assert res["team.a.b"].status == res["team.a.c"].status == Status.PASS


# --------------------------------------------------------------------------- the threads check bodies run in


def _idle_soon(t: threading.Thread) -> None:
    end = time.monotonic() + 5
    while t.name != "golive-check-idle" and time.monotonic() < end:
        time.sleep(0.01)
    assert t.name == "golive-check-idle"


def test_check_bodies_reuse_idle_threads_and_a_body_that_hangs_keeps_its_own():
    """Starting a thread per body blocked the event loop on each start; bodies now go to idle daemon threads. A
    thread is named for the check it runs (what the deadline tests look for), and a hung body holds only its own."""
    from golive.tasks.core import _BODIES

    release, seen = threading.Event(), []
    _BODIES.submit(lambda: (seen.append(threading.current_thread().name), release.wait(10)), "check:test.hang")
    try:
        for k in range(3):  # warm: threads to reuse
            done = threading.Event()
            _BODIES.submit(done.set, f"check:test.warm{k}")
            assert done.wait(5)
        ours = lambda: {t for t in threading.enumerate() if t.name.startswith(("golive-check", "check:"))}  # noqa: E731
        before = ours()
        ran: list[threading.Thread] = []
        for k in range(20):  # one after the other: each finds an idle thread
            done = threading.Event()
            _BODIES.submit(lambda d=done: (ran.append(threading.current_thread()), d.set()), f"check:test.q{k}")
            assert done.wait(5)
            _idle_soon(ran[-1])
        assert ours() == before  # no thread started for them
        assert [t.name for t in threading.enumerate() if t.name == "check:test.hang"] == ["check:test.hang"]
        assert seen == ["check:test.hang"]
    finally:
        release.set()


def test_a_forked_child_runs_check_bodies_on_threads_of_its_own():
    """The threads are not copied by fork(): a child that kept the parent's count of idle threads would hand its
    bodies to nobody (and every check would time out)."""
    import os

    from golive.tasks.core import _BODIES

    done = threading.Event()
    _BODIES.submit(done.set, "check:test.parent")
    assert done.wait(5)
    ran = [t for t in threading.enumerate() if t.name == "golive-check-idle"]
    assert ran  # the parent has an idle thread: the case a stale count gets wrong
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = threading.Event()
        _BODIES.submit(ok.set, "check:test.child")
        os._exit(0 if ok.wait(5) else 1)
    end, status = time.monotonic() + 15, None
    while status is None and time.monotonic() < end:
        done, st = os.waitpid(pid, os.WNOHANG)
        status = st if done else time.sleep(0.05)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert status is not None and os.waitstatus_to_exitcode(status) == 0


def test_a_body_no_thread_could_take_is_an_error_saying_so_and_never_runs_after_its_deadline(monkeypatch):
    """Where no thread can be started (a pids limit), the check is ERROR at its deadline naming why, not "the target
    did not answer" (it was never asked); and once a thread can start, the body given up on is not run late."""
    import asyncio

    from golive.tasks import core

    pool = core._BodyThreads()
    monkeypatch.setattr(core, "_BODIES", pool)
    real_start = threading.Thread.start

    def start(self):
        if self.name == "golive-check-idle":
            raise RuntimeError("can't start new thread")
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    ran = threading.Event()

    def body(_t, _ctx):
        ran.set()
        return core.passed("ok", "ok", "tests/test_core.py")

    r = asyncio.run(core.execute(spec("team.a.starved", body, timeout=0.5), None))
    assert r.status == Status.ERROR and "before a thread could run the body (can't start new thread)" in r.cause
    monkeypatch.setattr(threading.Thread, "start", real_start)  # threads can start again: the spawner retries
    end = time.monotonic() + 5
    while time.monotonic() < end and not (
        pool.start_failure == "" and any(t.name == "golive-check-idle" for t in threading.enumerate())
    ):
        time.sleep(0.05)
    assert pool.start_failure == "" and not ran.wait(0.5)  # the thread took the abandoned body and did not run it
