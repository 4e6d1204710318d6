"""Containers and the cluster (seed 2.3): the Docker Engine API (unix socket or TCP) and the Kubernetes API.

- Docker: `GET /_ping`, `GET /containers/json?all=1`: every expected container exists and is running, no running
  container is unhealthy (the health status Docker appends to `Status`: "Up 2 hours (unhealthy)").
- Kubernetes: `GET /api/v1/nodes` (every node Ready, none cordoned), `GET /readyz?verbose` and the pods of
  kube-system (the control plane's and add-ons' components running and ready).
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from .clients.http import bounded, http_client, req_timeout
from .core import Observation, RunContext, check, failed, failed_if, given
from .models import CaFile, Target


class DockerTarget(Target):
    url: str = Field("unix:///var/run/docker.sock", description="unix:///path/docker.sock or http(s)://host:port")
    expected_containers: list[str] = Field(default_factory=list,
                                           description="container names that must exist and be running")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlsplit(v)
        if u.scheme == "unix" and u.path:
            return v
        if u.scheme in ("http", "https", "tcp") and u.netloc:
            return v.rstrip("/")
        raise ValueError("must be unix:///path/to/docker.sock or http(s)://host:port")


class KubernetesTarget(Target):
    api_url: str = Field(description="the API server, https://host:6443")
    token: SecretStr | None = Field(None, description="a bearer token (a read-only service account)")
    min_ready_nodes: int = Field(1, ge=1)
    system_namespace: str = "kube-system"

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).netloc:
            raise ValueError("must be an http(s):// URL")
        return v.rstrip("/")


class ContainersTarget(Target):
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) for https Docker / Kubernetes APIs")
    docker: DockerTarget | None = None
    kubernetes: KubernetesTarget | None = None


# --------------------------------------------------------------------------- Docker

def docker_client(t: ContainersTarget, ctx: RunContext):
    import httpx

    assert t.docker is not None
    u = urlsplit(t.docker.url)
    if u.scheme == "unix":
        return bounded(httpx.Client(transport=httpx.HTTPTransport(uds=u.path), base_url="http://docker",
                                    timeout=httpx.Timeout(ctx.remaining)), ctx.deadline), \
            f"--unix-socket {u.path} http://docker"
    base = t.docker.url.replace("tcp://", "http://", 1)
    return http_client(ctx, t.ca_file, base_url=base), base


_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


@check("dependencies.docker.containers", title="Docker: the expected containers run and none is unhealthy",
       seed=["2.3 Docker Daemon"], timeout=10, target="containers",
       needs={"containers.docker": "not containerized with Docker"})
def docker_containers(t: ContainersTarget, ctx: RunContext) -> Observation:
    """Docker Engine API: GET /_ping answers OK; GET /containers/json?all=1: every expected container exists with
    State running, and no running container reports (unhealthy) or (health: starting)."""
    c, curl_base = docker_client(t, ctx)
    with c:
        ping = c.get("/_ping", timeout=req_timeout(ctx))
        if ping.status_code != 200:
            return failed(f"/_ping answered HTTP {ping.status_code}", "OK", f"GET {curl_base}/_ping")
        r = c.get("/containers/json", params={"all": "1"}, timeout=req_timeout(ctx))
        r.raise_for_status()
        containers = r.json()
        version = ping.headers.get("api-version", "?")
    by_name: dict[str, dict[str, Any]] = {}
    for x in containers:
        for n in x.get("Names") or []:
            by_name[n.lstrip("/")] = x
    problems: list[str] = []
    seen: dict[str, str] = {}
    for name in t.docker.expected_containers:
        x = by_name.get(name)
        if x is None:
            problems.append(f"{name}: no such container")
        elif x.get("State") != "running":
            problems.append(f"{name}: {x.get('State')} ({x.get('Status')})")
    for x in containers:
        name = (x.get("Names") or ["?"])[0].lstrip("/")
        seen[name] = f"{x.get('State')}: {x.get('Status')}"
        m = _HEALTH.search(str(x.get("Status", "")))
        if x.get("State") == "running" and m and m.group(1) != "healthy":
            problems.append(f"{name}: {m.group(1)}")
    evidence = (f"Docker Engine API {version}: GET /_ping, GET /containers/json?all=1; re-run: "
                f"`curl -sS {curl_base}/containers/json?all=1 | jq '.[] | {{Names, State, Status}}'` "
                "(or `docker ps -a`)")
    expected = (f"{', '.join(t.docker.expected_containers) or 'every container'} running; no running container "
                "unhealthy")
    observed: dict[str, Any] = {"containers": seen or "none"}
    if problems:
        observed["problems"] = problems
    return failed_if(problems, observed, expected, evidence)


# --------------------------------------------------------------------------- Kubernetes

def _k8s_get(t: ContainersTarget, ctx: RunContext, path: str) -> Any:
    k = t.kubernetes
    assert k is not None
    headers = {"Accept": "application/json"}
    if k.token is not None:
        headers["Authorization"] = f"Bearer {k.token.get_secret_value()}"
    with http_client(ctx, t.ca_file) as c:
        r = c.get(f"{k.api_url}{path}", headers=headers, timeout=req_timeout(ctx))
    if r.status_code in (401, 403):
        raise PermissionError(f"the Kubernetes API refused GET {path} (HTTP {r.status_code}): check the token's RBAC")
    return r


#: what the Kubernetes checks need (the standard NOT_APPLICABLE reason otherwise)
KUBERNETES = {"containers.kubernetes": "not running on Kubernetes"}


def _kubectl(k: KubernetesTarget, what: str) -> str:
    return f"kubectl --server {k.api_url} {what}"


@check("dependencies.kubernetes.nodes", title="Kubernetes: every node is Ready and schedulable",
       seed=["2.3 Kubernetes Cluster"], timeout=10, target="containers", needs=KUBERNETES)
def kubernetes_nodes(t: ContainersTarget, ctx: RunContext) -> Observation:
    """GET /api/v1/nodes: at least min_ready_nodes nodes, each with condition Ready=True and not cordoned
    (spec.unschedulable)."""
    k = given(t.kubernetes)
    r = _k8s_get(t, ctx, "/api/v1/nodes")
    r.raise_for_status()
    nodes = r.json().get("items") or []
    observed: dict[str, str] = {}
    problems: list[str] = []
    ready = 0
    for n in nodes:
        name = (n.get("metadata") or {}).get("name", "?")
        conds = {c.get("type"): c for c in (n.get("status") or {}).get("conditions") or []}
        rc = conds.get("Ready") or {}
        ok = rc.get("status") == "True"
        cordoned = bool((n.get("spec") or {}).get("unschedulable"))
        why = rc.get("reason") or rc.get("status") or "no Ready condition"
        observed[name] = ("Ready" if ok else f"NotReady ({why})") + (", cordoned" if cordoned else "")
        if not ok:
            problems.append(f"{name} is NotReady: {rc.get('message') or rc.get('reason') or 'no Ready condition'}")
        elif cordoned:
            problems.append(f"{name} is cordoned (unschedulable)")
        else:
            ready += 1
    if ready < k.min_ready_nodes:
        problems.append(f"{ready} ready node(s) < {k.min_ready_nodes}")
    evidence = f"GET {k.api_url}/api/v1/nodes; re-run: `{_kubectl(k, 'get nodes')}`"
    out: dict[str, Any] = {"nodes": observed or "none"}
    if problems:
        out["problems"] = problems
    return failed_if(problems, out, f"every node Ready and schedulable, >= {k.min_ready_nodes} ready",
                                            evidence)


@check("dependencies.kubernetes.components", title="Kubernetes: API server ready and system components healthy",
       seed=["2.3 Kubernetes Cluster"], timeout=10, target="containers", needs=KUBERNETES)
def kubernetes_components(t: ContainersTarget, ctx: RunContext) -> Observation:
    """GET /readyz?verbose answers 200 (every [+] check ok); every pod of kube-system is Running (or Succeeded) with
    all its containers ready."""
    k = given(t.kubernetes)
    rz = _k8s_get(t, ctx, "/readyz?verbose")
    failing = [ln.strip() for ln in rz.text.splitlines() if ln.strip().startswith("[-]")]
    r = _k8s_get(t, ctx, f"/api/v1/namespaces/{k.system_namespace}/pods")
    r.raise_for_status()
    pods = r.json().get("items") or []
    problems: list[str] = []
    if rz.status_code != 200:
        problems.append(f"/readyz answered HTTP {rz.status_code}" + (f": {'; '.join(failing)}" if failing else ""))
    states: dict[str, str] = {}
    for p in pods:
        name = (p.get("metadata") or {}).get("name", "?")
        st = p.get("status") or {}
        phase = st.get("phase")
        cs = st.get("containerStatuses") or []
        not_ready = [c.get("name") for c in cs if not c.get("ready")]
        states[name] = phase + (f", not ready: {', '.join(not_ready)}" if not_ready and phase == "Running" else "")
        if phase == "Succeeded":
            continue
        if phase != "Running":
            problems.append(f"{name}: {phase}")
        elif not_ready:
            problems.append(f"{name}: container(s) not ready: {', '.join(not_ready)}")
    if not pods:
        problems.append(f"no pods in {k.system_namespace}")
    evidence = (f"GET {k.api_url}/readyz?verbose; GET {k.api_url}/api/v1/namespaces/{k.system_namespace}/pods; "
                f"re-run: `{_kubectl(k, 'get --raw /readyz?verbose')}` and "
                f"`{_kubectl(k, f'get pods -n {k.system_namespace}')}`")
    observed: dict[str, Any] = {"readyz": f"HTTP {rz.status_code}", "pods": states or "none"}
    if problems:
        observed["problems"] = problems
    return failed_if(problems, observed, f"/readyz 200; every {k.system_namespace} pod Running and ready",
                                            evidence)
