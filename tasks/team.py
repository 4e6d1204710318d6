"""Team readiness that a machine can know: runbooks answer, the contact list is complete (section 9)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field

from .core import Observation, RunContext, check, failed, passed
from .models import Target
from .tls import http_client, req_timeout


class Contact(Target):
    role: str
    name: str = ""
    phone: str = ""
    slack: str = ""
    email: str = ""


class TeamTarget(Target):
    runbooks: dict[str, str] = Field(default_factory=dict,
                                     description="name -> URL (http/https) or file path, e.g. deployment, rollback")
    contacts: list[Contact] = Field(default_factory=list)
    required_roles: list[str] = Field(default_factory=lambda: [
        "Deployment Lead", "Infrastructure Lead", "Backend Lead", "Frontend Lead", "Database Admin",
        "Security Lead", "VP Engineering", "CTO"])
    ca_file: Path | None = Field(None, description="extra trust anchor (PEM) for https runbook URLs")


# --------------------------------------------------------------------------- checks

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SLACK = re.compile(r"^[@#][A-Za-z0-9._\-]{1,80}$")
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)+$")


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


@check("team.runbooks.reachable", title="Runbooks are available", seed=["9.1 Runbooks Available"],
       timeout=15, target="team")
def runbooks_reachable(t: TeamTarget, ctx: RunContext) -> Observation:
    """Each runbook URL answers 200 (https verified against the system store + ca_file), or each file path
    exists and is non-empty."""
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
    evidence = "; ".join(f"{name}: " + (f"GET {ref}" if urlsplit(ref).scheme in ("http", "https")
                                        else f"stat {ref}") for name, ref in t.runbooks.items())
    return (failed if bad else passed)(observed, expected, evidence, failing=bad)


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


@check("team.contacts.complete", title="Contact list is complete for every required role",
       seed=["9.1 Team Contact Info"], timeout=5, target="team")
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
            incomplete[role] = [f"{p.name or '(unnamed)'}: {', '.join(pr)}"
                                for p, pr in zip(people, problems, strict=True)]
    expected = (f"all {len(t.required_roles)} required roles with name, E.164 phone, Slack @handle/#channel, "
                "valid email")
    evidence = (f"{len(t.contacts)} contact(s) in team.contacts checked against required_roles "
                f"{t.required_roles}: phone E.164 {E164.pattern} (spaces, dashes, dots, parentheses ignored), "
                f"slack {SLACK.pattern}, email address syntax")
    if incomplete:
        return failed({"incomplete": incomplete}, expected, evidence)
    return passed(f"all {len(t.required_roles)} roles complete", expected, evidence)
