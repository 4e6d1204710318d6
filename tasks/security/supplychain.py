"""Dependency security (checklist 5.4): known vulnerabilities of the app's pinned dependencies (pip-audit against an
OSV API, npm audit where a package-lock exists) and pinned versions behind the latest stable release of a package
index (PEP 503 / PEP 691 simple API). The settings are `security.dependencies`; the advisory source and the index are
URLs, so an internal mirror (or the sandbox's) works without internet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import Field

from ..app import read_lock
from ..clients.http import http_client, req_timeout
from ..core import Observation, RunContext, check, given, passed_if
from ..models import Target


class DependencyAudit(Target):
    lock_file: Path = Field(description="seed 5.4: the backend's lock / requirements file (name==version lines)")
    vulnerability_service: str = Field("osv", pattern="^(osv|pypi)$", description="pip-audit's advisory source")
    osv_url: str | None = Field(None, description="OSV API query URL (an internal mirror); default: api.osv.dev")
    ignore_vulns: list[str] = Field(default_factory=list, description="advisory ids accepted after review")
    pip_audit: str | None = Field(None, description="the pip-audit executable (default: the one installed with golive)")
    npm_lock_dir: Path | None = Field(
        None,
        description="the frontend directory holding package-lock.json: npm "
        "audit runs there (absent: the npm part is not applicable)",
    )
    npm_registry: str | None = Field(None, description="npm registry URL for `npm audit` (an internal mirror)")
    npm_fail_level: str = Field(
        "high", pattern="^(low|moderate|high|critical)$", description="seed 5.4: no critical/high severity issues"
    )
    index_url: str | None = Field(
        None,
        description="seed 5.4: a PEP 503/691 simple index (…/simple/) whose newest "
        "stable releases the pins are compared with",
    )
    watch: list[str] | None = Field(
        None, description="packages that must be on the latest stable release (None: every pinned package)"
    )
    concurrency: int = Field(8, ge=1, le=32, description="concurrent index requests")


def _pip_audit(d: DependencyAudit) -> str:
    if d.pip_audit:
        return d.pip_audit
    beside = Path(sys.executable).with_name("pip-audit")
    return str(beside) if beside.exists() else (shutil.which("pip-audit") or "pip-audit")


_SEVERITIES = ["info", "low", "moderate", "high", "critical"]


def _npm_audit(d: DependencyAudit, ctx: RunContext) -> tuple[dict[str, Any], str, bool]:
    """(observed, command, ok) of npm audit in npm_lock_dir."""
    assert d.npm_lock_dir is not None
    npm = shutil.which("npm")
    cmd = ["npm", "audit", "--package-lock-only", "--json"]
    if d.npm_registry:
        cmd += ["--registry", d.npm_registry]
    shown = f"cd {d.npm_lock_dir} && {' '.join(cmd)}"
    if not (d.npm_lock_dir / "package-lock.json").is_file():
        return {"npm": f"no package-lock.json in {d.npm_lock_dir}"}, shown, False
    if npm is None:
        return {"npm": "npm is not installed where golive runs"}, shown, False
    with tempfile.TemporaryDirectory(prefix="golive-npm-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "npm_config_cache": home,
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
        }
        r = subprocess.run(
            [npm, *cmd[1:]],
            cwd=d.npm_lock_dir,
            capture_output=True,
            text=True,
            env=env,
            timeout=max(1.0, ctx.remaining - 1),
        )
    try:
        report = json.loads(r.stdout or "{}")
    except ValueError:
        return {"npm": f"npm audit exit {r.returncode}: {ctx.redact.clip(r.stderr or r.stdout, 200)}"}, shown, False
    if "error" in report:
        err = report["error"]
        return {"npm": f"npm audit error: {err.get('summary', err) if isinstance(err, dict) else err}"}, shown, False
    counts = report.get("metadata", {}).get("vulnerabilities", {})
    level = _SEVERITIES.index(d.npm_fail_level)
    blocking = {s: counts.get(s, 0) for s in _SEVERITIES[level:] if counts.get(s, 0)}
    names = sorted(report.get("vulnerabilities", {}))
    return {"npm": {"counts": {s: counts.get(s, 0) for s in _SEVERITIES}, "packages": names[:20]}}, shown, not blocking


@check(
    "security.dependencies.vulnerabilities",
    title="No known vulnerabilities in the pinned dependencies",
    seed=["5.4 Dependency Vulnerabilities"],
    timeout=30,
    target="security.dependencies",
    slow=True,  # a pip-audit (and npm audit) subprocess: about a second, the longest light check
)
def vulnerabilities(d: DependencyAudit, ctx: RunContext) -> Observation:
    """`pip-audit -r <lock_file> --no-deps --disable-pip -s osv [--osv-url ...] -f json`: no pinned package has a known
    advisory (except ignore_vulns); and, with npm_lock_dir, `npm audit --package-lock-only` finds nothing at
    npm_fail_level or above."""
    exe = _pip_audit(d)
    args = [
        "-r",
        str(d.lock_file),
        "--no-deps",
        "--disable-pip",
        "-s",
        d.vulnerability_service,
        "-f",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        str(max(1, int(ctx.remaining / 2))),
    ]
    if d.osv_url and d.vulnerability_service == "osv":
        args += ["--osv-url", d.osv_url]
    for vid in d.ignore_vulns:
        args += ["--ignore-vuln", vid]
    with tempfile.TemporaryDirectory(prefix="golive-pip-audit-") as cache:
        r = subprocess.run(
            [exe, *args, "--cache-dir", cache],
            capture_output=True,
            text=True,
            timeout=max(1.0, ctx.remaining - 1),
            env=ctx.child_env(PIP_NO_INPUT="1"),
        )
    command = f"{Path(exe).name} " + " ".join(args)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        lines = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if len(ln.strip()) > 3]
        raise RuntimeError(f"pip-audit exit {r.returncode}: {' | '.join(lines[-2:]) or 'no output'}") from None
    deps = report.get("dependencies", [])
    vulnerable = {
        f"{x['name']}=={x.get('version')}": [" / ".join([v["id"], *v.get("aliases", [])]) for v in x.get("vulns", [])]
        for x in deps
        if x.get("vulns")
    }
    skipped = [x["name"] for x in deps if x.get("skip_reason")]
    observed: dict[str, Any] = {
        "audited": len(deps) - len(skipped),
        "vulnerable": vulnerable,
        "not_audited": skipped[:20],
    }
    fixes = {
        f"{x['name']}": sorted({fv for v in x.get("vulns", []) for fv in v.get("fix_versions", [])})
        for x in deps
        if x.get("vulns")
    }
    ok = not vulnerable and r.returncode in (0, 1) and observed["audited"] > 0
    if not observed["audited"]:
        observed["problem"] = f"nothing audited: no name==version pin in {d.lock_file}"
    evidence = f"re-run: `{command}`"
    if d.npm_lock_dir is not None:
        npm_obs, npm_cmd, npm_ok = _npm_audit(d, ctx)
        observed.update(npm_obs)
        ok = ok and npm_ok
        evidence += f"; `{npm_cmd}`"
    else:
        observed["npm"] = "not applicable: no `security.dependencies.npm_lock_dir` (no package-lock.json to audit)"
    expected = {
        "vulnerable": "none" + (f" (ignoring {d.ignore_vulns})" if d.ignore_vulns else ""),
        "npm": f"nothing {d.npm_fail_level} or above" if d.npm_lock_dir else "not applicable",
    }
    return passed_if(ok, observed, expected, evidence, fix_versions=fixes)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.files: list[str] = []
        self._in_a = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._in_a = True
            href = dict(attrs).get("href") or ""
            self.files.append(href.split("#", 1)[0].rsplit("/", 1)[-1])

    def handle_endtag(self, tag: str) -> None:
        self._in_a = False


def _versions(name: str, filenames: list[str]) -> set[str]:
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        canonicalize_name,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    out: set[str] = set()
    for fn in filenames:
        try:
            if fn.endswith(".whl"):
                n, v, *_ = parse_wheel_filename(fn)
            elif fn.endswith((".tar.gz", ".zip")):
                n, v = parse_sdist_filename(fn)
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
            continue
        if canonicalize_name(n) == canonicalize_name(name):
            out.add(str(v))
    return out


def latest_stable(index_url: str, name: str, client: Any, timeout: Any) -> tuple[str | None, str]:
    """(newest non-pre-release version, how) from a simple index page (PEP 691 JSON or PEP 503 HTML)."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    url = index_url.rstrip("/") + f"/{canonicalize_name(name)}/"
    r = client.get(
        url,
        timeout=timeout,
        follow_redirects=True,
        headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"},
    )
    if r.status_code == 404:
        return None, "not on the index"
    r.raise_for_status()
    if "json" in r.headers.get("content-type", ""):
        body = r.json()
        versions = set(body.get("versions") or []) or _versions(
            name, [f["filename"] for f in body.get("files", []) if not f.get("yanked")]
        )
    else:
        p = _Links()
        p.feed(r.text)
        versions = _versions(name, p.files)
    stable = []
    for v in versions:
        try:
            pv = Version(v)
        except InvalidVersion:
            continue
        if not pv.is_prerelease and not pv.is_devrelease:
            stable.append(pv)
    return (str(max(stable)) if stable else None), url


@check(
    "security.dependencies.outdated",
    title="Pinned packages are on their latest stable release",
    seed=["5.4 Outdated Packages"],
    severity="advisory",
    timeout=30,
    target="security.dependencies",
    needs=["security.dependencies.index_url"],
)
def outdated(d: DependencyAudit, ctx: RunContext) -> Observation:
    """For each watched package (default: every pin of lock_file), the newest stable (no pre-/dev-release) version on
    index_url (simple API, `concurrency` at a time) is not newer than the pin. Advisory: an outdated package is
    reported, not a blocker."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    index_url = given(d.index_url)
    pins = {canonicalize_name(k): v for k, v in read_lock(d.lock_file).items()}
    names = [canonicalize_name(n) for n in (d.watch if d.watch is not None else list(pins))]
    unpinned = [n for n in names if n not in pins]
    names = [n for n in names if n in pins]
    with http_client(ctx) as c:
        with ThreadPoolExecutor(max_workers=d.concurrency) as pool:
            latest = dict(zip(names, pool.map(lambda n: latest_stable(index_url, n, c, req_timeout(ctx)), names)))
    behind: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for n in names:
        newest, how = latest[n]
        if newest is None:
            unknown[n] = how
            continue
        try:
            if Version(newest) > Version(pins[n]):
                behind[n] = f"{pins[n]} pinned, {newest} available"
        except InvalidVersion:
            unknown[n] = f"unparsable pin {pins[n]!r}"
    observed = {"checked": len(names), "outdated": behind, "not_on_index": unknown, "not_pinned": unpinned}
    expected = {"outdated": "none (each pin is the newest stable release)"}
    evidence = (
        f"GET {d.index_url.rstrip('/')}/<name>/ (PEP 691 JSON or PEP 503 HTML) for "
        f"{len(names)} package(s) of {d.lock_file}; pre-releases ignored; re-run: "
        f"`pip index versions --index-url {d.index_url} {names[0] if names else 'NAME'}`"
    )
    ok = not behind and not unpinned and not unknown and bool(names)
    return passed_if(ok, observed, expected, evidence)
