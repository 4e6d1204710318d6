"""Team readiness that a machine can know (section 9, and the on-call part of 7.2): runbooks answer, the contact
list is complete, the communication templates exist, the Slack channels exist and are live, someone is on call now
and the escalation is quick enough.

What only people can know (briefings held, stakeholders informed) is not a check: see `flows/attestations.py`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator

from .clients.http import http_client, req_timeout
from .core import Observation, RunContext, check, failed, failed_if, given, passed, service_down, skipped, url_address
from .models import CaFile, HttpUrl, Target


class Contact(Target):
    role: str
    name: str = ""
    phone: str = ""
    slack: str = ""
    email: str = ""


class CommsTemplates(Target):
    """Seed 9.2: each document is a URL (must answer 200) or a file path (must be a non-empty file)."""

    release_notes: str | None = Field(None, description="the release notes (9.2 Post-Deployment Communication)")
    status_page_template: str | None = Field(
        None, description="the status-page update template (9.2 Incident Notification: external)"
    )
    customer_email_template: str | None = Field(
        None, description="the customer notification email template (9.2 Incident Notification: customers)"
    )


SLACK_CHANNEL = re.compile(r"^#?[a-z0-9][a-z0-9._\-]{0,79}$")


class SlackWorkspace(Target):
    """Seed 9.1 / 9.2: the deployment and alert channels exist. Read with the Slack Web API (conversations.list)."""

    bot_token: SecretStr | None = Field(
        None,
        description="a bot token (xoxb-...) with channels:read (and groups:read "
        "for private channels); without it the check is N/A",
    )
    api_url: HttpUrl = Field("https://slack.com/api", description="Slack Web API base URL")
    channels: list[str] = Field(
        default_factory=lambda: ["#deployment", "#alerts-production"],
        description="channel names that must exist and not be archived",
    )
    private_channels: bool = Field(
        False, description="also look among private channels the bot is a member of (needs the groups:read scope)"
    )

    @field_validator("channels")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not SLACK_CHANNEL.match(c)]
        if bad:
            raise ValueError(f"not Slack channel names (lowercase, digits, - _ .): {bad}")
        return v


class OnCall(Target):
    """Seed 7.2 On-Call Setup / 9.1 rotation: a PagerDuty(-compatible) REST API answers who is on call now."""

    api_token: SecretStr | None = Field(
        None, description="PagerDuty REST API token (read-only is enough); without it the check is N/A"
    )
    api_url: HttpUrl = Field("https://api.pagerduty.com", description="PagerDuty REST API base URL")
    escalation_policy_id: str = Field(description="the escalation policy the production service pages")
    schedule_ids: list[str] = Field(
        default_factory=list, description="schedules that must each have someone on call now (optional)"
    )
    max_escalation_delay_minutes: float = Field(5.0, gt=0, description="seed 7.2: escalate after 5 minutes")


class TeamTarget(Target):
    runbooks: dict[str, str] = Field(
        default_factory=dict, description="name -> URL (http/https) or file path, e.g. deployment, rollback"
    )
    contacts: list[Contact] = Field(default_factory=list)
    required_roles: list[str] = Field(
        default_factory=lambda: [
            "Deployment Lead",
            "Infrastructure Lead",
            "Backend Lead",
            "Frontend Lead",
            "Database Admin",
            "Security Lead",
            "VP Engineering",
            "CTO",
        ]
    )
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM): runbook, template and API URLs")
    comms: CommsTemplates | None = Field(None, description="communication templates; absent: the check is N/A")
    slack: SlackWorkspace = Field(default_factory=SlackWorkspace)
    oncall: OnCall | None = Field(None, description="the on-call API; absent: the check is N/A")


# --------------------------------------------------------------------------- checks

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SLACK = re.compile(r"^[@#][A-Za-z0-9._\-]{1,80}$")
EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)+$"
)


def _runbook(ref: str, t: TeamTarget, ctx: RunContext, client: Any) -> tuple[bool, str]:
    """(ok, what was seen) for one runbook: an http(s) URL must answer 200 (redirects followed);
    a path (or file:// URL) must be a non-empty file."""
    import httpx

    scheme = urlsplit(ref).scheme.lower()
    if scheme in ("http", "https"):
        try:
            with client.stream("GET", ref, timeout=req_timeout(ctx)) as r:
                hops = len(r.history)
                return r.status_code == 200, f"{r.status_code}" + (f" after {hops} redirect(s)" if hops else "")
        except httpx.TransportError as e:  # the runbook is unreachable: a finding, not a broken probe
            return False, f"unreachable: {type(e).__name__}: {e}"
    path = Path(unquote(urlsplit(ref).path)) if scheme == "file" else Path(ref).expanduser()
    if not path.is_file():
        return False, "file missing"
    size = path.stat().st_size
    return size > 0, f"file, {size:,} bytes" if size else "file is empty"


def _verdict(
    refs: dict[str, str], observed: dict[str, str], bad: list[str], expected: str, evidence: str, ctx: RunContext
) -> Observation:
    """FAIL naming `bad`, but a URL that could not be reached because it is on a server golive checks itself (the
    web endpoint) and that server is down is not judged: that check reports it (SKIPPED naming it when nothing else
    is wrong)."""
    gone: dict[str, str] = {}
    for name in bad:
        if observed[name].startswith("unreachable") and (down := service_down(ctx, *url_address(refs[name]))):
            gone[name] = down.details["blocked_by"]
            observed[name] = f"not judged: {down.details['reason']}"
    own = [name for name in bad if name not in gone]
    if gone and not own:
        name, owner = next(iter(gone.items()))
        return skipped(f"{', '.join(gone)}: {observed[name]}", owner, observed, expected, evidence)
    return failed_if(own, observed, expected, evidence, failing=own, not_judged=gone)


@check(
    "team.runbooks.reachable",
    title="Runbooks are available",
    seed=["9.1 Runbooks Available"],
    timeout=15,
    target="team",
)
def runbooks_reachable(t: TeamTarget, ctx: RunContext) -> Observation:
    """Each runbook URL answers 200 (https verified against the system store + ca_file), or each file path
    exists and is non-empty. A URL on a server that is down where golive checks a service itself (the web endpoint)
    is that check's failure: not judged here, SKIPPED naming it when nothing else is wrong."""
    expected = "at least one runbook; every URL answers 200, every file exists and is non-empty"
    if not t.runbooks:
        return failed("no runbooks declared", expected, "`team.runbooks` is empty in the environment config")
    observed: dict[str, str] = {}
    bad = []
    with http_client(ctx, t.ca_file, follow_redirects=True, max_redirects=5) as c:
        for name, ref in t.runbooks.items():
            ok, seen = _runbook(ref, t, ctx, c)
            observed[name] = seen
            if not ok:
                bad.append(name)
    evidence = "; ".join(
        f"{name}: " + (f"GET {ref}" if urlsplit(ref).scheme in ("http", "https") else f"stat {ref}")
        for name, ref in t.runbooks.items()
    )
    return _verdict(t.runbooks, observed, bad, expected, evidence, ctx)


def contact_problems(c: Contact) -> list[str]:
    out = []
    if not c.name.strip():
        out.append("name missing")
    phone = re.sub(r"[\s\-().]", "", c.phone)
    if not phone:
        out.append("phone missing")
    elif not E164.match(phone):
        out.append(f"phone {c.phone!r} is not E.164 (+<country><number>)")
    if not c.slack.strip():
        out.append("slack handle/channel missing")
    elif not SLACK.match(c.slack.strip()):
        out.append(f"slack {c.slack!r} is not @handle or #channel")
    if not c.email.strip():
        out.append("email missing")
    elif not EMAIL.match(c.email.strip()):
        out.append(f"email {c.email!r} is not a valid address")
    return out


@check(
    "team.contacts.complete",
    title="Contact list is complete for every required role",
    seed=["9.1 Team Contact Info"],
    timeout=5,
    target="team",
)
def contacts_complete(t: TeamTarget, ctx: RunContext) -> Observation:
    """Every required role has a contact with a name, an E.164 phone, a Slack @handle/#channel and a valid email."""
    by_role: dict[str, list[Contact]] = {}
    for c in t.contacts:
        by_role.setdefault(c.role.strip().lower(), []).append(c)
    incomplete: dict[str, list[str]] = {}
    for role in t.required_roles:
        people = by_role.get(role.strip().lower())
        if not people:
            incomplete[role] = ["no contact for this role"]
            continue
        problems = [contact_problems(p) for p in people]
        if all(problems):  # at least one complete contact per role is enough
            incomplete[role] = [
                f"{p.name or '(unnamed)'}: {', '.join(pr)}" for p, pr in zip(people, problems, strict=True)
            ]
    expected = f"all {len(t.required_roles)} required roles with name, E.164 phone, Slack @handle/#channel, valid email"
    evidence = (
        f"{len(t.contacts)} contact(s) in team.contacts checked against required_roles "
        f"{t.required_roles}: phone E.164 {E164.pattern} (spaces, dashes, dots, parentheses ignored), "
        f"slack {SLACK.pattern}, email address syntax"
    )
    if incomplete:
        return failed({"incomplete": incomplete}, expected, evidence)
    return passed(f"all {len(t.required_roles)} roles complete", expected, evidence)


def _how(ref: str) -> str:
    return f"GET {ref}" if urlsplit(ref).scheme in ("http", "https") else f"stat {ref}"


# --------------------------------------------------------------------------- communication templates

COMMS_DOCS = {
    "release_notes": "release notes",
    "status_page_template": "status-page update template",
    "customer_email_template": "customer email template",
}


@check(
    "team.comms.templates",
    title="Release notes and incident communication templates are ready",
    seed=["9.2 Incident Notification", "9.2 Post-Deployment Communication"],
    timeout=15,
    target="team",
    needs={"team.comms": "release notes, status-page and customer email templates"},
)
def comms_templates(t: TeamTarget, ctx: RunContext) -> Observation:
    """Release notes, status-page template and customer email template: each URL answers 200, each file is non-empty.

    URLs are fetched with redirects followed (https verified against the system store + team.ca_file). A URL on a
    server that is down where golive checks a service itself (the web endpoint) is not judged: SKIPPED naming that
    check when nothing else is wrong."""
    expected = "release notes, status-page template, customer email template: each URL answers 200, each file non-empty"
    observed: dict[str, str] = {}
    bad: list[str] = []
    how: list[str] = []
    with http_client(ctx, t.ca_file, follow_redirects=True, max_redirects=5) as c:
        for name in COMMS_DOCS:
            ref = getattr(t.comms, name)
            if not ref:
                observed[name], ok = "not declared in team.comms", False
            else:
                ok, observed[name] = _runbook(ref, t, ctx, c)
                how.append(f"{name}: {_how(ref)}")
            if not ok:
                bad.append(name)
    evidence = "; ".join(how) or "nothing declared under team.comms"
    return _verdict({name: getattr(t.comms, name) or "" for name in COMMS_DOCS}, observed, bad, expected, evidence, ctx)


# --------------------------------------------------------------------------- Slack channels


class SaasApiError(RuntimeError):
    """The SaaS API could not be asked (bad token, missing scope, rate limit, unexpected answer): an ERROR."""


SLACK_AUTH_ERRORS = {
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "ekm_access_denied",
}
SLACK_MAX_PAGES = 100


def slack_conversations(
    s: SlackWorkspace, ctx: RunContext, ca_file: Path | None, wanted: set[str]
) -> tuple[dict[str, dict[str, Any]], int]:
    """Channels by name, from `conversations.list` (cursor pagination; archived ones included so an archived
    channel reads as archived, not missing). Stops paging once every wanted name was seen. (channels, pages)."""
    assert s.bot_token is not None
    headers = {"Authorization": f"Bearer {s.bot_token.get_secret_value()}"}
    types = "public_channel,private_channel" if s.private_channels else "public_channel"
    found: dict[str, dict[str, Any]] = {}
    cursor, pages = "", 0
    with http_client(ctx, ca_file) as c:
        while True:
            params = {"types": types, "exclude_archived": "false", "limit": "200"}
            if cursor:
                params["cursor"] = cursor
            r = c.get(f"{s.api_url}/conversations.list", params=params, headers=headers, timeout=req_timeout(ctx))
            pages += 1
            if r.status_code == 429:
                raise SaasApiError(
                    f"Slack rate-limited conversations.list (HTTP 429, Retry-After "
                    f"{r.headers.get('retry-after', '?')} s)"
                )
            if r.status_code != 200:
                raise SaasApiError(f"Slack conversations.list answered HTTP {r.status_code}")
            body = r.json()
            if not body.get("ok"):
                err = str(body.get("error", "unknown_error"))
                if err in SLACK_AUTH_ERRORS:
                    raise SaasApiError(f"Slack rejected the bot token ({err})")
                if err == "missing_scope":
                    raise SaasApiError(
                        f"the Slack bot token lacks a scope (needed {body.get('needed')}, "
                        f"provided {body.get('provided')})"
                    )
                raise SaasApiError(f"Slack conversations.list answered ok=false ({err})")
            for ch in body.get("channels") or []:
                found[str(ch.get("name", ""))] = ch
            cursor = str((body.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor or wanted <= set(found):
                return found, pages
            if pages >= SLACK_MAX_PAGES:
                raise SaasApiError(f"conversations.list still had more after {pages} pages")


@check(
    "team.slack.channels",
    title="Deployment and alert Slack channels exist and are not archived",
    seed=["9.1 Team Contact Info", "9.2 Incident Notification"],
    timeout=15,
    target="team",
    needs={"team.slack.bot_token": "the Slack channels cannot be read"},
)
def slack_channels(t: TeamTarget, ctx: RunContext) -> Observation:
    """Slack Web API `conversations.list` (bot token, every page): each configured channel exists, not archived.

    Default channels #deployment and #alerts-production; archived channels are listed too, so an archived channel
    reads as archived and not as missing."""
    s = t.slack
    wanted = {c.lstrip("#"): c for c in s.channels}
    found, pages = slack_conversations(s, ctx, t.ca_file, set(wanted))
    observed: dict[str, str] = {}
    bad: list[str] = []
    for name, label in wanted.items():
        ch = found.get(name)
        if ch is None:
            observed[label] = "not found" + ("" if s.private_channels else " among public channels")
            bad.append(label)
        elif ch.get("is_archived"):
            observed[label] = f"archived ({ch.get('id', '?')})"
            bad.append(label)
        else:
            member = "" if ch.get("is_member", True) else ", the bot is not a member"
            observed[label] = f"exists ({ch.get('id', '?')}{member})"
    types = "public_channel,private_channel" if s.private_channels else "public_channel"
    evidence = (
        f"GET {s.api_url}/conversations.list?types={types}&exclude_archived=false&limit=200 "
        f"(Authorization: Bearer <team.slack.bot_token>), {pages} page(s), {len(found)} channel(s) seen"
    )
    return failed_if(bad, observed, f"{', '.join(wanted.values())} exist and are not archived", evidence, failing=bad)


# --------------------------------------------------------------------------- on call

PD_ACCEPT = "application/vnd.pagerduty+json;version=2"
PD_MAX_PAGES = 20


def _pd_get(c: Any, o: OnCall, path: str, params: list[tuple[str, str]], ctx: RunContext) -> Any:
    assert o.api_token is not None
    r = c.get(
        f"{o.api_url}{path}",
        params=params,
        timeout=req_timeout(ctx),
        headers={"Authorization": f"Token token={o.api_token.get_secret_value()}", "Accept": PD_ACCEPT},
    )
    if r.status_code in (401, 403):
        try:
            msg = r.json().get("error", {}).get("message", "")
        except ValueError:
            msg = ""
        raise SaasApiError(
            f"the on-call API rejected the token on GET {path} (HTTP {r.status_code}{': ' + msg if msg else ''})"
        )
    if r.status_code == 429:
        raise SaasApiError(f"the on-call API rate-limited GET {path} (HTTP 429)")
    return r


def _who(o: dict[str, Any]) -> str:
    user = (o.get("user") or {}).get("summary") or (o.get("user") or {}).get("id") or "?"
    where = (o.get("schedule") or {}).get("summary") or "permanent"
    until = f", until {o['end']}" if o.get("end") else ""
    return f"L{o.get('escalation_level', '?')} {user} ({where}{until})"


@check(
    "team.oncall.current",
    title="Someone is on call now and escalation is quick enough",
    seed=["7.2 On-Call Setup", "9.1 Team Contact Info"],
    timeout=15,
    target="team",
    needs={key: "the on-call rotation cannot be read" for key in ("team.oncall", "team.oncall.api_token")},
)
def oncall_current(t: TeamTarget, ctx: RunContext) -> Observation:
    """PagerDuty REST API: someone is on call now (`GET /oncalls`), escalation after <= 5 min (escalation policy).

    Level 1 of the escalation policy must have someone on call now, and so must every configured schedule; every
    rule that escalates onward (the last one only when the policy loops) must do so within the limit."""
    o = given(t.oncall)
    limit = o.max_escalation_delay_minutes
    oncalls: list[dict[str, Any]] = []
    with http_client(ctx, t.ca_file) as c:
        base = [
            ("escalation_policy_ids[]", o.escalation_policy_id),
            *(("schedule_ids[]", s) for s in o.schedule_ids),
            ("earliest", "true"),
            ("limit", "100"),
        ]
        for _ in range(PD_MAX_PAGES):
            r = _pd_get(c, o, "/oncalls", [*base, ("offset", str(len(oncalls)))], ctx)
            if r.status_code != 200:
                raise SaasApiError(f"GET /oncalls answered HTTP {r.status_code}")
            body = r.json()
            oncalls += body.get("oncalls") or []
            if not body.get("more") or not body.get("oncalls"):
                break
        r = _pd_get(c, o, f"/escalation_policies/{o.escalation_policy_id}", [], ctx)
        policy = r.json().get("escalation_policy") if r.status_code == 200 else None
        if r.status_code not in (200, 404):
            raise SaasApiError(f"GET /escalation_policies/{o.escalation_policy_id} answered HTTP {r.status_code}")
    evidence = (
        f"GET {o.api_url}/oncalls?escalation_policy_ids[]={o.escalation_policy_id}"
        + "".join(f"&schedule_ids[]={s}" for s in o.schedule_ids)
        + f"&earliest=true; GET {o.api_url}/escalation_policies/{o.escalation_policy_id} "
        "(Authorization: Token token=<team.oncall.api_token>)"
    )
    sched = f" and on schedule(s) {', '.join(o.schedule_ids)}" if o.schedule_ids else ""
    expected = f"someone on call now at level 1{sched}; every escalation after <= {limit:g} min"
    problems: list[str] = []
    mine = [
        x
        for x in oncalls
        if (x.get("escalation_policy") or {}).get("id") in (None, o.escalation_policy_id) and x.get("user")
    ]
    if not any(x.get("escalation_level") == 1 for x in mine):
        problems.append("nobody on call at level 1 now")
    covered = {(x.get("schedule") or {}).get("id") for x in mine}
    problems += [f"nobody on call now on schedule {s}" for s in o.schedule_ids if s not in covered]
    delays: list[float] = []
    if policy is None:
        problems.append(f"escalation policy {o.escalation_policy_id} not found")
    else:
        rules = policy.get("escalation_rules") or []
        onward = rules if (policy.get("num_loops") or 0) > 0 else rules[:-1]  # the last rule escalates only on a loop
        delays = [float(r.get("escalation_delay_in_minutes", 0)) for r in onward]
        if not onward:
            problems.append(f"the policy never escalates ({len(rules)} rule(s), no loops)")
        problems += [f"level {i} escalates after {d:g} min (> {limit:g})" for i, d in enumerate(delays, 1) if d > limit]
    by_level = sorted(mine, key=lambda x: x.get("escalation_level") or 0)
    observed: dict[str, Any] = {"on_call_now": [_who(x) for x in by_level] or "nobody", "escalation_delays_min": delays}
    if policy is not None:
        observed["policy"] = policy.get("name") or policy.get("summary") or o.escalation_policy_id
    if problems:
        observed["problems"] = problems
    return failed_if(problems, observed, expected, evidence)
