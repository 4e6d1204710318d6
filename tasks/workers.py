"""Workers and background jobs (checklist 4.3), read from the scheduler's own job store.

APScheduler's SQLAlchemy job store keeps one row per job in a table (`apscheduler_jobs`: id, next_run_time as a UNIX
float, job_state as pickled bytes). golive reads it with psycopg through the `postgres` section's connection, and
decodes job_state with a restricted unpickler that never runs scheduler or application code: only datetime classes
(immutable) are built for real; a time zone becomes a fresh record of its name (never pytz's or zoneinfo's cached
zone: those are shared by the whole process, and a pickle's BUILD could rename or rewire them); APScheduler's trigger
classes become inert records of their pickled state; any other global refuses the whole row. Every cron value is
checked against its field's real range before a set is built. The cadence is compared as sets of allowed minutes /
hours / days, so `0 */6` and APScheduler's `hour='*/6', minute='0'` are the same thing.
"""

from __future__ import annotations

import datetime as dt
import io
import pickle
import re
import time
from typing import Any

from pydantic import Field, field_validator

from .core import Observation, RunContext, check, failed, failed_if, passed_if
from .models import Target
from .postgres import REACHABLE as PG_REACHABLE
from .postgres import PostgresTarget, _ident, connect, dsn_for_evidence, psql

SEED_JOBS = {  # seed 4.3 "Jobs Configured", UTC: a time of day where the seed names one, else an interval
    "daily_analytics_aggregation": "0 2 * * *",
    "weekly_model_retraining": "0 3 * * mon",
    "merchant_affinity_update": "every 6h",  # "every 6 hours": any phase, by interval or by cron
    "optimal_send_time_calculation": "0 4 * * *",
    "campaign_optimization_generation": "0 5 * * *",
}


class WorkersTarget(Target):
    jobs: dict[str, str] = Field(
        default_factory=lambda: dict(SEED_JOBS),
        description="seed 4.3: job id -> its cadence: a 5-field cron expression (fire times "
        "in `timezone`) or `every <n><s|m|h|d|w>` / `interval 6 hours` (a fixed "
        "interval, any phase)",
    )
    timezone: str = Field("UTC", description="the time zone every job's trigger must use")
    jobstore_table: str = Field("apscheduler_jobs", description="APScheduler SQLAlchemyJobStore table")
    heartbeat_table: str | None = Field(
        "scheduler_heartbeat",
        description="a table the scheduler refreshes while alive (None: judge liveness from next_run_time alone)",
    )
    heartbeat_column: str = "beat_at"
    max_heartbeat_age_s: float = Field(120.0, gt=0, description="the newest heartbeat is at most this old")
    overdue_grace_s: float = Field(
        300.0,
        ge=0,
        description="a job whose next_run_time is further in the past than "
        "this was not picked up: the scheduler is not processing jobs",
    )
    runs_table: str = Field("job_runs", description="where each job run is recorded (job, times, status)")
    runs_job_column: str = "job_name"
    runs_time_column: str = "started_at"
    runs_status_column: str = "status"
    success_values: list[str] = Field(default_factory=lambda: ["success"])
    run_grace_s: float = Field(3600.0, ge=0, description="the last successful run is at most one period + this old")
    trigger_job: bool = Field(
        False,
        description="seed 4.3 'run one job manually': WRITES a row to requests_table "
        "asking the scheduler to run trigger_job_id now, then waits for its run (opt-in)",
    )
    trigger_job_id: str = Field("daily_analytics_aggregation", description="the job trigger_job runs")
    requests_table: str = Field(
        "job_run_requests", description="the scheduler's run-now queue (job_id, requested_by, requested_at)"
    )
    trigger_wait_s: float = Field(20.0, gt=0, le=25, description="how long to wait for the triggered run")

    @field_validator("jobs")
    @classmethod
    def _crons(cls, v: dict[str, str]) -> dict[str, str]:
        for expr in v.values():
            parse_cadence(expr)  # raises ValueError naming the problem
        return v


# --------------------------------------------------------------------------- cron

_DOW = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MON = {
    m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MON),
    ("day_of_week", 0, 6, _DOW),
)


def _field_set(text: str, lo: int, hi: int, names: dict[str, int]) -> frozenset[int]:
    dow = names is _DOW
    top = 7 if dow else hi  # cron: 7 is Sunday too
    out: set[int] = set()
    for item in text.lower().split(","):
        m = re.fullmatch(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?", item)
        if not m:
            raise ValueError(f"bad cron item {item!r}")
        rng, step = m.group(1), int(m.group(2) or 1)
        if rng == "*":
            a, b = lo, hi
        else:
            parts = [int(p) if p.isdigit() else names.get(p) for p in rng.split("-")]
            if any(p is None for p in parts):
                raise ValueError(f"bad cron value {rng!r}")
            a = parts[0]
            b = parts[1] if len(parts) == 2 else (top if m.group(2) else a)
        if step < 1 or not (lo <= a <= top and lo <= b <= top) or b < a:
            raise ValueError(f"cron value out of range in {item!r}")
        out.update(v % 7 if dow else v for v in range(a, b + 1, step))
    return frozenset(out)


def parse_cron(expr: str) -> dict[str, frozenset[int]]:
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"{expr!r}: a cron expression has 5 fields (minute hour day month day_of_week)")
    return {name: _field_set(p, lo, hi, names) for p, (name, lo, hi, names) in zip(parts, _FIELDS)}


_EVERY = re.compile(r"(?:every|interval)\s+(\d+(?:\.\d+)?)\s*([a-z]+)", re.I)
_UNIT_S = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 604800),
}

#: a job's cadence: a fixed interval (any phase) or a cron expression's allowed values per field
Cadence = dt.timedelta | dict[str, frozenset[int]]


def parse_cadence(text: str) -> Cadence:
    """`every 6h`, `every 6 hours`, `interval 30m` (a fixed interval: any phase) or a 5-field cron expression."""
    t = text.strip()
    if not t.lower().startswith(("every", "interval")):
        return parse_cron(t)
    m = _EVERY.fullmatch(t)
    if not m or m.group(2).lower() not in _UNIT_S:
        raise ValueError(f"{text!r}: an interval is `every <n><unit>` with unit s, m, h, d or w (e.g. `every 6h`)")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2).lower()]
    if not 60 <= seconds <= 31 * 86400:
        raise ValueError(f"{text!r}: an interval from 1 minute to 31 days")
    return dt.timedelta(seconds=seconds)


def _fmt_cadence(c: Cadence) -> str:
    return f"every {c}" if isinstance(c, dt.timedelta) else " ".join(_fmt_set(c[f]) for f, *_ in _FIELDS)


def _matches(c: dict[str, frozenset[int]], t: dt.datetime) -> bool:
    return (
        t.minute in c["minute"]
        and t.hour in c["hour"]
        and t.month in c["month"]
        and t.day in c["day"]
        and (t.weekday() + 1) % 7 in c["day_of_week"]
    )


def cron_next(c: dict[str, frozenset[int]], after: dt.datetime) -> dt.datetime | None:
    """The first fire time strictly after `after` (minute resolution), searching 370 days."""
    t = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    end = t + dt.timedelta(days=370)
    while t < end:
        if t.month not in c["month"]:
            t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
            continue
        if t.day not in c["day"] or (t.weekday() + 1) % 7 not in c["day_of_week"]:
            t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
            continue
        if t.hour not in c["hour"]:
            t = t.replace(minute=0) + dt.timedelta(hours=1)
            continue
        if t.minute in c["minute"]:
            return t
        t += dt.timedelta(minutes=1)
    return None


def cron_fires(
    c: dict[str, frozenset[int]], after: dt.datetime, until: dt.datetime, *, least: int = 0, most: int = 3000
) -> list[dt.datetime]:
    """The fire times after `after` up to `until` (at least `least` of them if there are), at most `most`."""
    fires: list[dt.datetime] = []
    t = after
    while len(fires) < most:
        n = cron_next(c, t)
        if n is None or n > until and len(fires) >= least:
            break
        fires.append(n)
        t = n
    return fires


def cron_period(c: dict[str, frozenset[int]], now: dt.datetime) -> dt.timedelta:
    """The longest gap between consecutive fires over the next 8 days (its cadence, for 'last run is recent')."""
    fires = cron_fires(c, now, now + dt.timedelta(days=8), least=2, most=60)
    gaps = [b - a for a, b in zip(fires, fires[1:])]
    return max(gaps) if gaps else dt.timedelta(days=370)


def cadence_period(c: Cadence, now: dt.datetime) -> dt.timedelta:
    return c if isinstance(c, dt.timedelta) else cron_period(c, now)


# --------------------------------------------------------------------------- decoding job_state safely


class _Inert:
    """An APScheduler class, recorded, never executed: its constructor args and pickled state."""

    cls_name = "?"
    state: Any = None  # NEWOBJ does not call __init__

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.args = args
        self.state: Any = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slots state)
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.cls_name} {self.state!r}>"


class _Zone(dt.tzinfo):
    """A time zone named in a job's state: its name, nothing else (a tzinfo, so a datetime can carry it). Created
    fresh for each reference; a pickle's BUILD on it is refused."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key if isinstance(key, str) else "?"

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"refused BUILD on the time zone {self.key!r}")

    def __repr__(self) -> str:
        return f"<zone {self.key}>"


#: immutable C types: BUILD / SETITEM on them or their instances fails; they hold no process-wide state to rewire
_REAL = {
    ("datetime", "datetime"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("datetime", "date"),
    ("datetime", "time"),
}


def _zone(key: Any = "?", *_: Any) -> _Zone:
    return _Zone(key)


def _zone_getattr(obj: Any, name: str) -> Any:
    """builtins.getattr as protocol 4+ pickles a ZoneInfo (getattr(ZoneInfo, '_unpickle')), and for nothing else."""
    if obj is _zone and name == "_unpickle":
        return _zone
    raise pickle.UnpicklingError(f"refused getattr(..., {name!r}) (only ZoneInfo._unpickle)")


#: time zones, by how each library pickles them: a callable giving a fresh _Zone (pytz._p(zone, utcoffset, dst,
#: tzname) and ZoneInfo._unpickle(key, from_cache) would hand back the library's cached, shared zone object)
_ZONES: dict[tuple[str, str], Any] = {
    ("pytz", "_p"): _zone,
    ("pytz", "_UTC"): lambda: _Zone("UTC"),
    ("zoneinfo", "ZoneInfo"): _zone,
    ("zoneinfo", "ZoneInfo._unpickle"): _zone,
    ("zoneinfo._zoneinfo", "ZoneInfo._unpickle"): _zone,
    ("builtins", "getattr"): _zone_getattr,
}


class SafeUnpickler(pickle.Unpickler):
    """Builds only datetime objects for real; time zones become fresh _Zone records of their name; APScheduler trigger
    and job classes become inert records; anything else (os.system, builtins.eval, application classes, pytz's and
    zoneinfo's shared objects) raises UnpicklingError. So nothing a pickle's BUILD / SETITEM(S) / APPEND(S) can reach
    outlives the load: the objects it builds are fresh, and the classes it names are immutable or inert (made for
    this load: a process-wide cache of them would grow with every name a row invents)."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self._inert: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _REAL:
            return getattr(dt, name)
        if (module, name) == ("pytz", "utc"):  # pickled by reference: the instance itself
            return _Zone("UTC")
        if (module, name) in _ZONES:
            return _ZONES[module, name]
        if module.startswith(("apscheduler.triggers.", "apscheduler.job")) and re.fullmatch(r"[A-Za-z_]\w*", name):
            key = (module, name)
            if key not in self._inert:
                self._inert[key] = type(name, (_Inert,), {"cls_name": f"{module}.{name}"})
            return self._inert[key]
        raise pickle.UnpicklingError(f"refused global {module}.{name} (not a scheduler or time class)")


#: a job's pickled state is a few kilobytes; a bigger one is not fetched
MAX_JOB_STATE_BYTES = 1 << 20


def decode_job_state(blob: bytes) -> dict[str, Any]:
    state = SafeUnpickler(io.BytesIO(blob)).load()
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"job_state is a {type(state).__name__}, not a dict")
    return state


_AP_RANGES = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "day_of_week": (0, 6),
    "second": (0, 59),
}  # year and week are not compared: never built


def _expr_set(expr: _Inert, field: str) -> frozenset[int] | None:
    """The values an APScheduler field expression allows. Its first / last / step must be ints within the field's
    range (step 1..its width), checked before any range is built: ValueError, one line naming the field, otherwise
    (a crafted row once asked for range(0, 10**10))."""
    lo, hi = _AP_RANGES[field]
    s = expr.state if isinstance(expr.state, dict) else {}
    name = expr.cls_name.rsplit(".", 1)[-1]
    step = s.get("step") or 1
    if name == "AllExpression":
        first, last = lo, hi
    elif name in ("RangeExpression", "WeekdayRangeExpression", "MonthRangeExpression"):
        first = s.get("first")
        last = s.get("last", first) if s.get("last") is not None else (hi if s.get("step") else first)
        if first is None:
            return None
    else:
        return None  # positional / last-day expressions: not comparable to a 5-field cron
    for key, v, a, b in (("first", first, lo, hi), ("last", last, lo, hi), ("step", step, 1, hi - lo + 1)):
        if type(v) is not int or not a <= v <= b:
            shown = v if type(v) is int and v.bit_length() <= 64 else f"<{type(v).__name__}>"
            raise ValueError(f"job_state: {field} {name} {key} = {shown}, expected an int in {a}..{b}")
    vals = range(first, last + 1, step)
    if field == "day_of_week":  # APScheduler: mon=0 .. sun=6; cron: sun=0, mon=1
        return frozenset((v + 1) % 7 for v in vals)
    return frozenset(vals)


def trigger_sets(trigger: Any) -> tuple[str, dict[str, frozenset[int] | None], Any]:
    """(kind, {field: allowed values}, timezone) of a decoded trigger."""
    if not isinstance(trigger, _Inert):
        return type(trigger).__name__, {}, None
    kind = trigger.cls_name.rsplit(".", 1)[-1]
    st = trigger.state if isinstance(trigger.state, dict) else {}
    out: dict[str, frozenset[int] | None] = {}
    if kind == "CronTrigger":
        for f in st.get("fields", []):
            fs = f.state if isinstance(f, _Inert) and isinstance(f.state, dict) else {}
            name = fs.get("name")
            if name in _AP_RANGES:
                sets = [_expr_set(e, name) for e in fs.get("expressions", []) if isinstance(e, _Inert)]
                out[name] = None if any(s is None for s in sets) or not sets else frozenset().union(*sets)
    return kind, out, st.get("timezone")


MAX_COMBINED = 32  # triggers inside one OrTrigger / AndTrigger that golive compares (a crafted row may hold more)


def _child(ref: Any, state: Any) -> _Inert:
    """A combining trigger's child, pickled as (class reference, state): an inert record like the others."""
    obj = _Inert()
    obj.cls_name = str(ref).replace(":", ".")
    obj.state = state if isinstance(state, dict) else {}
    return obj


def trigger_fires(
    trigger: Any, after: dt.datetime, until: dt.datetime, anchor: dt.datetime | None, depth: int = 0
) -> list[dt.datetime]:
    """A decoded trigger's fire times (UTC) after `after` up to `until`: a cron trigger's, an interval trigger's
    (every `interval` from `anchor`, its next run time, or from a UTC start_date), and an OrTrigger's / AndTrigger's
    union / intersection of its children's. ValueError where a trigger cannot be compared, saying why."""
    kind, sets, _ = trigger_sets(trigger)
    st = trigger.state if isinstance(trigger, _Inert) and isinstance(trigger.state, dict) else {}
    if kind == "CronTrigger":
        cron = {f: sets.get(f) for f, *_ in _FIELDS}
        if any(v is None for v in cron.values()):
            raise ValueError("a cron field golive cannot compare (a positional or last-day expression)")
        return cron_fires(cron, after, until)  # type: ignore[arg-type]
    if kind == "IntervalTrigger":
        every = st.get("interval")
        if not isinstance(every, dt.timedelta) or every < dt.timedelta(minutes=1):
            shown = every if isinstance(every, dt.timedelta) else f"<{type(every).__name__}>"
            raise ValueError(f"interval {shown}: not an interval of a minute or more")
        if anchor is None:
            start = st.get("start_date")
            if not isinstance(start, dt.datetime) or _tz_name(start.tzinfo) != "UTC":
                raise ValueError("an interval inside a combined trigger starting outside UTC: compare it by hand")
            anchor = start.replace(tzinfo=dt.UTC)
        first = anchor + ((after - anchor) // every + 1) * every if anchor <= after else anchor
        count = int((until - first) / every) + 1 if first <= until else 0
        return [first + i * every for i in range(min(count, 3000))]
    if kind in ("OrTrigger", "AndTrigger") and depth < 3:
        parts = st.get("triggers")
        if not isinstance(parts, list) or not 0 < len(parts) <= MAX_COMBINED:
            raise ValueError(f"{kind} with {type(parts).__name__} triggers: expected a list of 1..{MAX_COMBINED}")
        children = [
            trigger_fires(_child(*c), after, until, None, depth + 1)
            for c in parts
            if isinstance(c, tuple) and len(c) == 2
        ]
        if not children:
            raise ValueError(f"{kind} without readable triggers")
        sets_ = [set(c) for c in children]
        merged = set().union(*sets_) if kind == "OrTrigger" else set.intersection(*sets_)
        return sorted(merged)
    raise ValueError(f"{kind}: golive reads cron, interval and combining (or / and) triggers")


def _tz_name(tz: Any) -> str | None:
    if tz is None:
        return None
    if tz in (dt.UTC,):
        return "UTC"
    return str(getattr(tz, "key", None) or getattr(tz, "zone", None) or tz)


def _fmt_set(s: frozenset[int] | None) -> str:
    if s is None:
        return "?"
    v = sorted(s)
    return ",".join(map(str, v)) if len(v) <= 8 else f"{v[0]}..{v[-1]} ({len(v)} values)"


# --------------------------------------------------------------------------- probes

JOB_STORE = "the job store's database is not configured"


def jobstore(t: WorkersTarget, pg: PostgresTarget, ctx: RunContext) -> dict[str, Any]:
    """Rows of the job store, decoded; the heartbeat; the database's now(). Memoized per run."""
    from psycopg import sql

    def do() -> dict[str, Any]:
        with connect(pg, ctx, read_only=True) as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            rows = conn.execute(
                sql.SQL(
                    "SELECT id, next_run_time, CASE WHEN octet_length(job_state) <= %s THEN "
                    "job_state END, octet_length(job_state) FROM {}"
                ).format(_ident(t.jobstore_table)),
                [MAX_JOB_STATE_BYTES],
            ).fetchall()
            beat = None
            if t.heartbeat_table:
                beat = conn.execute(
                    sql.SQL("SELECT max({}) FROM {}").format(
                        sql.Identifier(t.heartbeat_column), _ident(t.heartbeat_table)
                    )
                ).fetchone()[0]
        jobs: dict[str, dict[str, Any]] = {}
        for job_id, nrt, blob, size in rows:
            entry: dict[str, Any] = {"next_run_time": nrt}
            try:
                if blob is None:
                    raise pickle.UnpicklingError(
                        f"job_state is {size} bytes, more than {MAX_JOB_STATE_BYTES}: not read"
                    )
                entry["state"] = decode_job_state(bytes(blob))
            except Exception as e:  # noqa: BLE001 - a row we refuse to decode is evidence, not a crash
                entry["decode_error"] = f"{type(e).__name__}: {e}"
            jobs[job_id] = entry
        return {"now": now, "jobs": jobs, "heartbeat": beat}

    return ctx.memo(("jobstore", pg.host, pg.port, pg.dbname, t.jobstore_table, t.heartbeat_table), do)


def _ts(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _evidence(t: WorkersTarget, pg: PostgresTarget, extra: str = "") -> str:
    q = f"SELECT id, to_timestamp(next_run_time) FROM {t.jobstore_table} ORDER BY next_run_time"
    return (
        f"read {t.jobstore_table} (APScheduler SQLAlchemyJobStore) on {dsn_for_evidence(pg)}; job_state decoded "
        f"with a restricted unpickler (time classes only, scheduler classes inert, nothing executed){extra}; "
        f"re-run: `{psql(pg, q)}`"
    )


@check(
    "application.workers.scheduler",
    title="The scheduler is alive and picking up its jobs",
    seed=["4.3 Scheduler Running"],
    depends_on=[PG_REACHABLE],
    timeout=10,
    target="workers",
    needs={"postgres": JOB_STORE},
)
def scheduler_alive(t: WorkersTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """The newest row of heartbeat_table is at most max_heartbeat_age_s old (by the database's clock), and no job of
    the store has a next_run_time more than overdue_grace_s in the past (a stopped scheduler leaves them there)."""
    js = jobstore(t, postgres, ctx)
    now = js["now"]
    overdue = {
        j: _ts(e["next_run_time"])
        for j, e in js["jobs"].items()
        if e["next_run_time"] is not None and now.timestamp() - e["next_run_time"] > t.overdue_grace_s
    }
    scheduled = sum(1 for e in js["jobs"].values() if e["next_run_time"] is not None)
    observed: dict[str, Any] = {"jobs_in_store": len(js["jobs"]), "scheduled": scheduled, "overdue": overdue}
    expected: dict[str, Any] = {
        "overdue": f"none (next_run_time at most {t.overdue_grace_s:g} s in the past)",
        "scheduled": ">= 1",
    }
    ok = not overdue and scheduled >= 1
    extra = ""
    if t.heartbeat_table:
        beat = js["heartbeat"]
        age = None if beat is None else round((now - beat).total_seconds(), 1)
        observed["heartbeat_age_s"] = age if age is not None else f"no row in {t.heartbeat_table}"
        expected["heartbeat_age_s"] = f"<= {t.max_heartbeat_age_s:g}"
        ok = ok and age is not None and age <= t.max_heartbeat_age_s
        extra = f", and max({t.heartbeat_column}) of {t.heartbeat_table} vs now()"
    return passed_if(ok, observed, expected, _evidence(t, postgres, extra))


@check(
    "application.workers.jobs",
    title="Every scheduled job exists with the right cadence",
    seed=["4.3 Jobs Configured"],
    depends_on=[PG_REACHABLE],
    timeout=10,
    target="workers",
    needs={"postgres": JOB_STORE},
)
def jobs_configured(t: WorkersTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """Each job of `jobs` is in the job store, scheduled (next_run_time set), with the expected cadence, compared by
    what the trigger does, not how it is written. Accepted forms:
    - expected cron, an APScheduler CronTrigger in `timezone`: its minutes / hours / days / months / weekdays equal
      the expression's (`0 */6 * * *` and `hour='*/6', minute='0'` alike), at second 0;
    - expected cron, an IntervalTrigger or an OrTrigger / AndTrigger of cron and interval triggers: the same fire
      times (UTC) over the next 8 days (`IntervalTrigger(days=1)` started at 02:00 is `0 2 * * *`);
    - expected `every 6h`: any trigger firing at that fixed interval, whatever its phase (`IntervalTrigger(hours=6)`,
      `0 */6 * * *`, `0 1,7,13,19 * * *`);
    and for an expected cron, next_run_time is itself one of its fire times."""
    js = jobstore(t, postgres, ctx)
    problems: dict[str, str] = {}
    observed: dict[str, Any] = {}
    for job, expr in t.jobs.items():
        want = parse_cadence(expr)
        e = js["jobs"].get(job)
        if e is None:
            problems[job] = "missing from the job store"
            continue
        if "decode_error" in e:
            problems[job] = f"job_state not decodable: {e['decode_error']}"
            continue
        try:
            kind, got, tz = trigger_sets(e["state"].get("trigger"))
        except ValueError as err:  # a cron value outside its field's range: refused before any set is built
            problems[job] = str(err)
            continue
        tzn = _tz_name(tz)
        observed[job] = {"trigger": kind, "timezone": tzn, "next_run_time": _ts(e["next_run_time"])}
        nrt = None if e["next_run_time"] is None else dt.datetime.fromtimestamp(e["next_run_time"], dt.UTC)
        why = []
        if kind == "CronTrigger":
            observed[job].update({f: _fmt_set(got.get(f)) for f, *_ in _FIELDS})
        if kind == "CronTrigger" and isinstance(want, dict):
            for f in want:
                if got.get(f) != want[f]:
                    why.append(f"{f} {_fmt_set(got.get(f))} (expected {_fmt_set(want[f])})")
            if got.get("second") not in (frozenset({0}), None) and got.get("second") != frozenset({0}):
                why.append(f"second {_fmt_set(got.get('second'))} (expected 0)")
            if tzn != t.timezone:
                why.append(f"timezone {tzn} (expected {t.timezone})")
        else:
            why += _cadence_problems(e["state"].get("trigger"), want, nrt or js["now"], nrt, observed[job])
        if nrt is None:
            why.append("paused (next_run_time is NULL)")
        elif isinstance(want, dict) and (
            cron_next(want, nrt - dt.timedelta(minutes=1)) != nrt.replace(second=0, microsecond=0)
            or nrt.second
            or nrt.microsecond
        ):
            why.append(f"next_run_time {_ts(e['next_run_time'])} is not a fire time of {expr!r}")
        if why:
            problems[job] = "; ".join(why)
    expected = {
        job: (
            f"every {parse_cadence(expr)}"
            if expr.strip().lower().startswith(("every", "interval"))
            else f"cron {expr!r} in {t.timezone}"
        )
        + ", scheduled"
        for job, expr in t.jobs.items()
    }
    extra_jobs = sorted(set(js["jobs"]) - set(t.jobs))
    return failed_if(
        problems, {"problems": problems, "jobs": observed}, expected, _evidence(t, postgres), other_jobs=extra_jobs
    )


def _cadence_problems(
    trigger: Any, want: Cadence, start: dt.datetime, anchor: dt.datetime | None, observed: dict[str, Any]
) -> list[str]:
    """A trigger compared with the expected cadence by its fire times over the next 8 days (or 3 periods)."""
    after = start - dt.timedelta(minutes=1)
    until = after + max(dt.timedelta(days=8), 3 * cadence_period(want, after))
    try:
        fires = trigger_fires(trigger, after, until, anchor)
    except (ValueError, TypeError, OverflowError) as err:  # a crafted state: this job's problem, not the check's
        return [f"trigger not comparable: {err}"]
    gaps = sorted({b - a for a, b in zip(fires, fires[1:])})
    observed["fires_every"] = ", ".join(str(g) for g in gaps[:3]) + ("…" if len(gaps) > 3 else "") or "once"
    if isinstance(want, dt.timedelta):
        return [] if gaps == [want] else [f"fires every {observed['fires_every']} (expected every {want})"]
    expected = cron_fires(want, after, until)
    if fires == expected:
        return []
    diff = sorted(set(fires) ^ set(expected))[:1]
    return [
        f"fire times differ from the cron's over the next {(until - after).days} days (first: "
        f"{diff[0].isoformat(timespec='minutes')}{' expected' if diff and diff[0] in expected else ' extra'})"
    ]


@check(
    "application.workers.execution",
    title="Jobs run and record their results",
    seed=["4.3 Job Execution"],
    depends_on=[PG_REACHABLE],
    timeout=30,
    target="workers",
    needs={"postgres": JOB_STORE},
)
def job_execution(t: WorkersTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """Read-only by default: each job's last run in runs_table succeeded and is at most one period of its cadence
    (+ run_grace_s) old. With trigger_job (opt-in, WRITES): asks the scheduler to run trigger_job_id now (a row in
    requests_table) and waits up to trigger_wait_s for its successful run to land in runs_table."""
    from psycopg import sql

    pg = postgres
    runs, jc, tc, sc = (
        _ident(t.runs_table),
        sql.Identifier(t.runs_job_column),
        sql.Identifier(t.runs_time_column),
        sql.Identifier(t.runs_status_column),
    )
    if t.trigger_job:
        if t.trigger_job_id not in t.jobs:
            return failed(f"trigger_job_id {t.trigger_job_id!r}", f"one of {sorted(t.jobs)}", "config")
        with connect(pg, ctx) as conn:
            requested = conn.execute("SELECT now()").fetchone()[0]
            conn.execute(
                sql.SQL("INSERT INTO {} (job_id, requested_by) VALUES (%s, %s)").format(_ident(t.requests_table)),
                [t.trigger_job_id, "golive"],
            )
            conn.commit()
            deadline = time.monotonic() + min(t.trigger_wait_s, max(0.5, ctx.remaining - 1))
            row = None
            while time.monotonic() < deadline:
                row = conn.execute(
                    sql.SQL("SELECT {}, {} FROM {} WHERE {} = %s AND {} >= %s ORDER BY {} DESC LIMIT 1").format(
                        tc, sc, runs, jc, tc, tc
                    ),
                    [t.trigger_job_id, requested],
                ).fetchone()
                conn.rollback()
                if row is not None:
                    break
                time.sleep(0.25)
        waited = round((dt.datetime.now(dt.UTC) - requested).total_seconds(), 1)
        evidence = (
            f"INSERT INTO {t.requests_table} (job_id, requested_by) VALUES ('{t.trigger_job_id}', 'golive') "
            f"on {dsn_for_evidence(pg)} (workers.trigger_job is on), then polled {t.runs_table} for its run"
        )
        expected = f"a {'/'.join(t.success_values)} run of {t.trigger_job_id} within {t.trigger_wait_s:g} s"
        if row is None:
            return failed({"run": f"none after {waited} s"}, expected, evidence)
        observed = {
            "job": t.trigger_job_id,
            "status": row[1],
            "started_at": row[0].isoformat(timespec="seconds"),
            "after_s": waited,
        }
        return passed_if(row[1] in t.success_values, observed, expected, evidence)

    with connect(pg, ctx, read_only=True) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
        q = sql.SQL(
            "SELECT DISTINCT ON ({j}) {j}, {t}, {s} FROM {r} WHERE {j} = ANY(%s) ORDER BY {j}, {t} DESC"
        ).format(j=jc, t=tc, s=sc, r=runs)
        last = {r[0]: (r[1], r[2]) for r in conn.execute(q, [list(t.jobs)]).fetchall()}
        q_ok = sql.SQL("SELECT {j}, max({t}) FROM {r} WHERE {j} = ANY(%s) AND {s} = ANY(%s) GROUP BY {j}").format(
            j=jc, t=tc, s=sc, r=runs
        )
        last_ok = dict(conn.execute(q_ok, [list(t.jobs), t.success_values]).fetchall())
    problems: dict[str, str] = {}
    observed: dict[str, Any] = {}
    for job, expr in t.jobs.items():
        period = cadence_period(parse_cadence(expr), now)
        limit = period.total_seconds() + t.run_grace_s
        if job not in last:
            problems[job] = f"no run recorded in {t.runs_table}"
            continue
        when, status = last[job]
        age = (now - when).total_seconds()
        observed[job] = {
            "last_run": when.isoformat(timespec="seconds"),
            "status": status,
            "age_h": round(age / 3600, 2),
            "limit_h": round(limit / 3600, 2),
        }
        if status not in t.success_values:
            problems[job] = f"last run {status!r}"
        elif age > limit:
            problems[job] = f"last run {age / 3600:.1f} h ago (its cadence allows {limit / 3600:.1f} h)"
    q = (
        f"SELECT DISTINCT ON ({t.runs_job_column}) {t.runs_job_column}, {t.runs_time_column}, {t.runs_status_column} "
        f"FROM {t.runs_table} ORDER BY {t.runs_job_column}, {t.runs_time_column} DESC"
    )
    evidence = (
        f"the last run of each job in {t.runs_table} on {dsn_for_evidence(pg)} (read-only; "
        f"workers.trigger_job would run one now); re-run: `{psql(pg, q)}`"
    )
    expected = (
        f"each job's last run {'/'.join(t.success_values)} and within one period of its cadence "
        f"+ {t.run_grace_s / 3600:g} h"
    )
    return failed_if(
        problems,
        {"problems": problems, "jobs": observed},
        expected,
        evidence,
        last_success={j: w.isoformat(timespec="seconds") for j, w in last_ok.items()},
    )
