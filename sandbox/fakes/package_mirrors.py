"""The sandbox's supply-chain mirrors, over plain HTTP on 127.0.0.1 (no internet in the sandbox, as in many production
networks where CI reaches only internal mirrors):

- an OSV API mirror: `POST /v1/query` ({"package": {"name", "ecosystem"}, "version"} -> {"vulns": [...]}) answering
  from ADVISORIES (OSV schema 1.x entries), the API `pip-audit --vulnerability-service osv --osv-url` speaks;
- a PEP 503 simple package index (`GET /simple/<name>/`) listing, for each package of the app's lock file, the pinned
  release, an older one and a pre-release: the index an "outdated packages" check compares the pins with;
- npm's bulk advisory endpoint (`POST /-/npm/v1/security/advisories/bulk`), what `npm audit --registry` asks.

Runtime faults (the fault file): `vuln-published` publishes an advisory against the pinned starlette release;
`package-outdated` publishes a newer stable SQLAlchemy release.

Run as `python -m golive.sandbox.fakes.package_mirrors --port P --lock FILE --faults FILE`; the stack's `advisories`
part (sandbox/part.py), started once the app's lock file is in its repository.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import re
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..part import Service, Stack, child_env, python
from ..runtime import FaultFile

VULN_PACKAGE = "starlette"  # `vuln-published`
OUTDATED_PACKAGE = "sqlalchemy"  # `package-outdated`
PORTS = ("advisories",)

#: advisories that exist whatever the faults: none affects what the sandbox pins (old releases only)
ADVISORIES: list[dict] = [
    {
        "schema_version": "1.6.0",
        "id": "GHSA-sbx1-jinja-2019",
        "aliases": ["CVE-2019-10906"],
        "summary": "sandbox escape via str.format_map",
        "published": "2019-04-10T00:00:00Z",
        "affected": [
            {
                "package": {"name": "jinja2", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
            }
        ],
        "database_specific": {"severity": "HIGH"},
    },
    {
        "schema_version": "1.6.0",
        "id": "GHSA-sbx2-urllib3-2023",
        "aliases": ["CVE-2023-43804"],
        "summary": "Cookie header not stripped on cross-origin redirects",
        "published": "2023-10-02T00:00:00Z",
        "affected": [
            {
                "package": {"name": "urllib3", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0.0"}, {"fixed": "2.0.6"}]}],
            }
        ],
        "database_specific": {"severity": "HIGH"},
    },
]
NPM_ADVISORIES: dict[str, list[dict]] = {
    "lodash": [
        {
            "id": 1106913,
            "url": "https://github.com/advisories/GHSA-35jh-r3h4-6jhm",
            "title": "Command Injection in lodash",
            "severity": "high",
            "vulnerable_versions": "<4.17.21",
            "cwe": ["CWE-77"],
            "cvss": {"score": 7.2, "vectorString": None},
        }
    ],
}


def services(stack: Stack) -> list[Service]:
    """The `advisories` service, for the pins of the app's lock file (stack.app_lock)."""
    port = stack.ports["advisories"]
    return [
        Service(
            "advisories",
            lambda: python(
                "golive.sandbox.fakes.package_mirrors",
                "--port",
                str(port),
                "--lock",
                str(stack.app_lock),
                "--faults",
                str(stack.fault_file),
            ),
            (port,),
            env=child_env(),
        )
    ]


def read_lock(path: Path) -> dict[str, str]:
    """canonical name -> pinned version, from `name==version` lines."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#\\]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def _affected(entry: dict, name: str, version: str) -> bool:
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    for aff in entry["affected"]:
        if canonicalize_name(aff["package"]["name"]) != name or aff["package"]["ecosystem"] != "PyPI":
            continue
        if version in aff.get("versions", []):
            return True
        for rng in aff.get("ranges", []):
            introduced, fixed = Version("0"), None
            for ev in rng["events"]:
                if "introduced" in ev:
                    introduced = Version(ev["introduced"])
                if "fixed" in ev:
                    fixed = Version(ev["fixed"])
            if introduced <= v and (fixed is None or v < fixed):
                return True
    return False


def _bump(version: str, minor: bool = True) -> str:
    v = Version(version)
    return f"{v.major}.{v.minor + 1}.0" if minor else f"{v.major + 1}.0.0"


def create_app(lock: Path, faults: FaultFile):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    pins = read_lock(lock)

    def advisories() -> list[dict]:
        out = list(ADVISORIES)
        if "vuln-published" in faults and VULN_PACKAGE in pins:
            out.append(
                {
                    "schema_version": "1.6.0",
                    "id": "GHSA-sbx3-starlette-2026",
                    "aliases": ["CVE-2026-99999"],
                    "summary": "multipart parser denial of service",
                    "published": "2026-01-05T00:00:00Z",
                    "affected": [
                        {
                            "package": {"name": VULN_PACKAGE, "ecosystem": "PyPI"},
                            "ranges": [
                                {
                                    "type": "ECOSYSTEM",
                                    "events": [{"introduced": "0"}, {"fixed": _bump(pins[VULN_PACKAGE], minor=False)}],
                                }
                            ],
                        }
                    ],
                    "database_specific": {"severity": "HIGH"},
                }
            )
        return out

    async def query(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            name, version = canonicalize_name(body["package"]["name"]), str(body["version"])
            if body["package"].get("ecosystem", "PyPI") != "PyPI":
                return JSONResponse({})
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"code": 3, "message": "invalid query"}, status_code=400)
        vulns = [e for e in advisories() if _affected(e, name, version)]
        return JSONResponse({"vulns": vulns} if vulns else {})

    def releases(name: str) -> list[str]:
        pinned = pins[name]
        out = [pinned]
        try:
            v = Version(pinned)
            if v.minor > 0:
                out.insert(0, f"{v.major}.{v.minor - 1}.0")
            out.append(f"{v.major + 1}.0.0b1")  # a pre-release: never "the latest stable"
        except InvalidVersion:
            pass
        if name == OUTDATED_PACKAGE and "package-outdated" in faults:
            out.append(_bump(pinned))
        return out

    async def simple(request: Request) -> Response:
        name = canonicalize_name(request.path_params["name"])
        if name not in pins:
            return Response("not found", status_code=404)
        links = "\n".join(
            f'<a href="../../files/{name}-{v}.tar.gz">{html.escape(name)}-{html.escape(v)}.tar.gz</a><br>'
            for v in releases(name)
        )
        return HTMLResponse(
            f'<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0">'
            f"<title>Links for {html.escape(name)}</title></head><body>"
            f"<h1>Links for {html.escape(name)}</h1>\n{links}\n</body></html>"
        )

    async def npm_bulk(request: Request) -> Response:
        raw = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        try:
            wanted: dict[str, list[str]] = json.loads(raw or b"{}")
        except ValueError:
            return JSONResponse({"error": "invalid body"}, status_code=400)
        out: dict[str, list[dict]] = {}
        for name, versions in wanted.items():
            for adv in NPM_ADVISORIES.get(name, []):
                spec = SpecifierSet(adv["vulnerable_versions"].replace(" ", ""))
                if any(Version(v) in spec for v in versions if re.match(r"^\d+(\.\d+)*$", v)):
                    out.setdefault(name, []).append(adv)
        return JSONResponse(out)

    return Starlette(
        routes=[
            Route("/v1/query", query, methods=["POST"]),
            Route("/simple/{name}/", simple),
            Route("/-/npm/v1/security/advisories/bulk", npm_bulk, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m golive.sandbox.fakes.package_mirrors")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--lock", required=True, help="the app's requirements.lock (name==version lines)")
    p.add_argument("--faults", required=True, help="the runtime fault file")
    a = p.parse_args(argv)
    uvicorn.run(
        create_app(Path(a.lock), FaultFile(a.faults)),
        host="127.0.0.1",
        port=a.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
    )


if __name__ == "__main__":
    main()
