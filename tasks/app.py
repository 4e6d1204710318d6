"""The application as deployed (checklist 4.1 and 4.2): its runtime (environment variable names, installed packages vs
the lock file) as the app reports it, the frontend bundle (size, minified, every asset answers) and a scripted smoke
session through the API. The URL and the login come from the `web` section; this section holds what to expect.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator

from .clients.http import http_client, req_timeout
from .core import Observation, RunContext, check, failed, passed_if
from .models import Target
from .web import REACHABLE, WebTarget, _curl, _json_body, _login_evidence, login, url_of

MB = 1024 * 1024


class AppTarget(Target):
    runtime_path: str = Field(
        "/api/ops/runtime",
        description="authenticated endpoint where the app reports its "
        "runtime as JSON: `env` (names of its environment variables: a list, or an object whose "
        "keys are used, never its values), `packages` ({name: version}), `environment`",
    )
    required_env: list[str] = Field(
        default_factory=lambda: ["DATABASE_URL", "REDIS_URL", "SECRET_KEY"],
        description="seed 4.1: environment variables the app must have (names)",
    )
    expected_environment: str | None = Field(
        None, description="the `environment` the app must report (e.g. production: not test values)"
    )
    lock_file: Path | None = Field(
        None,
        description="seed 4.1: the app's lock / requirements file (name==version "
        "lines) the installed packages must match",
    )
    min_packages: int = Field(50, ge=0, description="seed 4.1: more than this many packages installed")
    ignore_packages: list[str] = Field(
        default_factory=lambda: ["pip", "setuptools", "wheel"],
        description="installed packages that are not expected in the lock file",
    )
    max_bundle_bytes: int = Field(5 * MB, gt=0, description="seed 4.2: total frontend bundle < 5 MB")
    max_whitespace_ratio: float = Field(
        0.15,
        gt=0,
        le=1,
        description="a JS/CSS file is minified when at most this share of its characters is whitespace ...",
    )
    min_avg_line_length: int = Field(80, ge=1, description="... and its lines are this long on average")
    asset_concurrency: int = Field(8, ge=1, le=64, description="concurrent asset requests")
    smoke_list_path: str = Field("/api/campaigns", description="seed 4.2: the list the frontend loads after login")
    smoke_list_key: str = Field("campaigns", description="the key of the list in that JSON answer")

    @field_validator("runtime_path", "smoke_list_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with /")
        return v


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """canonical name -> pinned version from `name==version` lines (comments, options and hashes ignored)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*===?\s*([^\s;#\\]+)", line)
        if m:
            pins[_canon(m.group(1))] = m.group(3)
    return pins


def runtime(web: WebTarget, app: AppTarget, ctx: RunContext) -> tuple[int | None, Any, str]:
    """(status, parsed JSON or None, what happened) of GET runtime_path with a token; memoized per run."""

    def do() -> tuple[int | None, Any, str]:
        status, token, what = login(web, ctx)
        if token is None:
            return status, None, what
        with http_client(ctx, web.ca_file) as c:
            r = c.get(
                url_of(web, app.runtime_path), headers={"Authorization": f"Bearer {token}"}, timeout=req_timeout(ctx)
            )
        body = _json_body(r)
        return (
            r.status_code,
            body,
            f"{app.runtime_path} answered {r.status_code}" + ("" if body is not None else " (not JSON)"),
        )

    return ctx.memo(("app-runtime", str(web.base_url), app.runtime_path), do)


def _runtime_evidence(web: WebTarget, app: AppTarget) -> str:
    return (
        _login_evidence(web) + f"; GET {url_of(web, app.runtime_path)} with the token; re-run: "
        f"`{_curl(web)} -H 'Authorization: Bearer $TOKEN' {url_of(web, app.runtime_path)} | jq 'del(.packages)'`"
    )


@check(
    "application.runtime.env_vars",
    title="Required environment variables are set on the app (names only)",
    seed=["4.1 Environment Variables"],
    depends_on=[REACHABLE],
    timeout=10,
    target="app",
    needs={"web.auth": "the runtime endpoint needs a login"},
)
def env_vars(app: AppTarget, ctx: RunContext, *, web: WebTarget) -> Observation:
    """GET runtime_path (logged in): every name of required_env is among the environment variable names the app
    reports, and its `environment` is expected_environment when one is configured. Values are never read."""
    status, body, what = runtime(web, app, ctx)
    expected: dict[str, Any] = {"present": sorted(app.required_env)}
    if app.expected_environment:
        expected["environment"] = app.expected_environment
    evidence = _runtime_evidence(web, app)
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("env"), (list, dict)):
        return failed({"runtime": what}, {"runtime": "200 with JSON {env: [...]}", **expected}, evidence)
    names = set(body["env"]) if isinstance(body["env"], list) else set(body["env"].keys())
    missing = sorted(set(app.required_env) - names)
    observed: dict[str, Any] = {
        "missing": missing,
        "present": sorted(set(app.required_env) & names),
        "env_names_reported": len(names),
    }
    ok = not missing
    if app.expected_environment:
        observed["environment"] = body.get("environment")
        ok = ok and body.get("environment") == app.expected_environment
    return passed_if(ok, observed, expected, evidence)


@check(
    "application.runtime.packages",
    title="Installed packages match the lock file",
    seed=["4.1 Dependencies Installed"],
    depends_on=[REACHABLE],
    timeout=10,
    target="app",
    needs={
        "web.auth": "the runtime endpoint needs a login",
        "app.lock_file": "nothing to compare the installed packages with",
    },
)
def packages(app: AppTarget, ctx: RunContext, *, web: WebTarget) -> Observation:
    """The distributions the app reports (`packages` of runtime_path) against lock_file: every pinned package is
    installed at its pinned version, and more than min_packages are installed. Installed packages absent from the lock
    are listed (not a failure)."""
    pins = read_lock(app.lock_file)
    status, body, what = runtime(web, app, ctx)
    expected = {
        "installed": f"> {app.min_packages} packages",
        "lock": f"all {len(pins)} pins of {app.lock_file} installed at their version",
    }
    evidence = (
        _runtime_evidence(web, app).replace("del(.packages)", ".packages")
        + f"; compared with the name==version lines of {app.lock_file}"
    )
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("packages"), dict):
        return failed({"runtime": what}, {"runtime": "200 with JSON {packages: {name: version}}", **expected}, evidence)
    installed = {_canon(k): str(v) for k, v in body["packages"].items()}
    missing = sorted(n for n in pins if n not in installed)
    mismatched = {
        n: f"{installed[n]} installed, {v} pinned"
        for n, v in sorted(pins.items())
        if n in installed and installed[n] != v
    }
    ignore = {_canon(n) for n in app.ignore_packages}
    unpinned = sorted(n for n in installed if n not in pins and n not in ignore)
    observed = {
        "installed": len(installed),
        "pinned": len(pins),
        "missing": missing[:20],
        "version_mismatch": dict(list(mismatched.items())[:20]),
        "not_in_lock": unpinned[:20],
    }
    ok = not missing and not mismatched and len(installed) > app.min_packages
    return passed_if(
        ok,
        observed,
        expected,
        evidence,
        missing_count=len(missing),
        mismatch_count=len(mismatched),
        not_in_lock_count=len(unpinned),
    )


# --------------------------------------------------------------------------- frontend (4.2)


class _Refs(HTMLParser):
    """script[src], link[href] (stylesheet, icon, preload), img[src], source[src]: what the page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (kind, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v for k, v in attrs if v}
        if tag == "script" and a.get("src"):
            self.refs.append(("js", a["src"]))
        elif tag == "link" and a.get("href"):
            rel = a.get("rel", "").lower().split()
            if "stylesheet" in rel:
                self.refs.append(("css", a["href"]))
            elif {"icon", "apple-touch-icon"} & set(rel):
                self.refs.append(("image", a["href"]))
            elif {"preload", "modulepreload"} & set(rel):
                self.refs.append((a.get("as", "js") if "preload" in rel else "js", a["href"]))
        elif tag in ("img", "source") and a.get("src"):
            self.refs.append(("image", a["src"]))


def _kind(kind: str, url: str, ctype: str) -> str:
    if kind in ("js", "script") or "javascript" in ctype or urlsplit(url).path.endswith((".js", ".mjs")):
        return "js"
    if kind in ("css", "style") or "css" in ctype or urlsplit(url).path.endswith(".css"):
        return "css"
    return "image" if kind == "image" or ctype.startswith("image/") else kind


def _minified(text: str) -> dict[str, Any]:
    lines = text.splitlines() or [""]
    ws = sum(1 for ch in text if ch.isspace())
    return {
        "whitespace_ratio": round(ws / max(1, len(text)), 3),
        "avg_line_length": round(len(text) / len(lines), 1),
        "lines": len(lines),
    }


def frontend(web: WebTarget, app: AppTarget, ctx: RunContext) -> dict[str, Any]:
    """GET / and every asset it references (bounded concurrency); memoized per run so the bundle and asset checks
    share one download. -> {"index": {status, bytes}, "assets": {url: {kind, status, bytes, ...}}}"""

    def do() -> dict[str, Any]:
        base = str(web.base_url)
        cap = app.max_bundle_bytes + 1
        with http_client(ctx, web.ca_file) as c:
            r = c.get(base, timeout=req_timeout(ctx))
            index = {"status": r.status_code, "bytes": len(r.content), "content_type": r.headers.get("content-type")}
            parser = _Refs()
            if r.status_code == 200:
                parser.feed(r.text)
            refs: dict[str, str] = {}
            for kind, ref in parser.refs:
                if ref.startswith("data:"):
                    continue
                url = urljoin(base, ref)
                if urlsplit(url).scheme in ("http", "https"):
                    refs.setdefault(url, kind)

            def fetch(url: str) -> tuple[str, dict[str, Any]]:
                size, chunks = 0, []
                with c.stream("GET", url, timeout=req_timeout(ctx)) as resp:
                    ctype = resp.headers.get("content-type", "").split(";")[0].strip()
                    kind = _kind(refs[url], url, ctype)
                    for chunk in resp.iter_bytes():
                        size += len(chunk)
                        if kind in ("js", "css") and size <= cap:
                            chunks.append(chunk)
                        if size > 64 * MB:  # nobody ships that: stop reading
                            break
                info: dict[str, Any] = {"kind": kind, "status": resp.status_code, "bytes": size, "content_type": ctype}
                if kind in ("js", "css") and resp.status_code == 200:
                    info.update(_minified(b"".join(chunks).decode("utf-8", "replace")))
                return url, info

            with ThreadPoolExecutor(max_workers=app.asset_concurrency) as pool:
                assets = dict(pool.map(fetch, refs))
        return {"index": index, "assets": assets}

    return ctx.memo(("frontend", str(web.base_url), app.max_bundle_bytes), do)


def _frontend_evidence(web: WebTarget, app: AppTarget) -> str:
    return (
        f"GET {web.base_url}, then every script[src], link[rel=stylesheet|icon|preload][href] and img/source[src] "
        f"it references ({app.asset_concurrency} at a time); re-run: `{_curl(web)} {web.base_url} | grep -Eo "
        '\'(src|href)="[^"]+"\'`'
    )


@check(
    "application.frontend.bundle",
    title="Frontend bundle is under 5 MB and minified",
    seed=["4.2 Frontend Built"],
    depends_on=[REACHABLE],
    timeout=20,
    target="app",
    needs={"web": "no frontend URL"},
)
def bundle(app: AppTarget, ctx: RunContext, *, web: WebTarget) -> Observation:
    """Sum of index.html and every asset it references < max_bundle_bytes; every JS/CSS file is minified (whitespace
    share <= max_whitespace_ratio and average line length >= min_avg_line_length)."""
    fe = frontend(web, app, ctx)
    if fe["index"]["status"] != 200:
        return failed({"index": fe["index"]}, "index.html answers 200", _frontend_evidence(web, app))
    total = fe["index"]["bytes"] + sum(a["bytes"] for a in fe["assets"].values())
    code = {u: a for u, a in fe["assets"].items() if a["kind"] in ("js", "css") and a["status"] == 200}
    unminified = {
        urlsplit(u).path: {k: a[k] for k in ("whitespace_ratio", "avg_line_length")}
        for u, a in code.items()
        if a["whitespace_ratio"] > app.max_whitespace_ratio or a["avg_line_length"] < app.min_avg_line_length
    }
    observed = {
        "total_bytes": total,
        "total_mb": round(total / MB, 3),
        "files": 1 + len(fe["assets"]),
        "js_css_files": len(code),
        "unminified": unminified,
    }
    expected = {
        "total_bytes": f"< {app.max_bundle_bytes} ({app.max_bundle_bytes / MB:g} MB)",
        "unminified": f"none (whitespace <= {app.max_whitespace_ratio:g}, avg line >= {app.min_avg_line_length} chars)",
    }
    ok = total < app.max_bundle_bytes and not unminified and bool(code)
    return passed_if(
        ok,
        observed,
        expected,
        _frontend_evidence(web, app),
        sizes={urlsplit(u).path: a["bytes"] for u, a in fe["assets"].items()},
    )


@check(
    "application.frontend.assets",
    title="Every CSS, JS and image the page references answers 200",
    seed=["4.2 Static Assets"],
    depends_on=[REACHABLE],
    timeout=20,
    target="app",
    needs={"web": "no frontend URL"},
)
def assets(app: AppTarget, ctx: RunContext, *, web: WebTarget) -> Observation:
    """Each asset referenced by index.html answers 200 (what the browser console would show as a 404)."""
    fe = frontend(web, app, ctx)
    by_kind: dict[str, int] = {}
    for a in fe["assets"].values():
        by_kind[a["kind"]] = by_kind.get(a["kind"], 0) + 1
    bad = {urlsplit(u).path: a["status"] for u, a in fe["assets"].items() if a["status"] != 200}
    observed = {"index": fe["index"]["status"], "assets": len(fe["assets"]), "by_kind": by_kind, "not_200": bad}
    ok = fe["index"]["status"] == 200 and bool(fe["assets"]) and not bad
    return passed_if(ok, observed, {"index": 200, "not_200": "none (every asset 200)"}, _frontend_evidence(web, app))


@check(
    "application.frontend.smoke",
    title="Smoke session: login, then the campaign list loads",
    seed=["4.2 API Integration"],
    depends_on=[REACHABLE],
    timeout=15,
    target="app",
    needs={"web.auth": "the smoke session needs a login"},
)
def smoke(app: AppTarget, ctx: RunContext, *, web: WebTarget) -> Observation:
    """What the frontend does after sign-in, scripted: log in through the API, GET smoke_list_path with the token,
    parse it: a JSON list under smoke_list_key whose items have an id and a name."""
    status, token, what = login(web, ctx)
    url = url_of(web, app.smoke_list_path)
    evidence = _login_evidence(web) + f"; GET {url} with the token, JSON parsed"
    expected = {
        "login": "200 with a token",
        app.smoke_list_path: f"200, a list under {app.smoke_list_key!r} of items with id and name",
    }
    if token is None:
        return failed({"login": what}, expected, evidence)
    with http_client(ctx, web.ca_file) as c:
        r = c.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=req_timeout(ctx))
    body = _json_body(r)
    items = body.get(app.smoke_list_key) if isinstance(body, dict) else body if isinstance(body, list) else None
    good = isinstance(items, list) and all(isinstance(i, dict) and "id" in i and "name" in i for i in items)
    observed = {
        "login": status,
        app.smoke_list_path: r.status_code,
        "items": len(items) if isinstance(items, list) else f"no list under {app.smoke_list_key!r}",
    }
    ok = r.status_code == 200 and good
    return passed_if(ok, observed, expected, evidence)
