"""Containers and the cluster (seed 2.3): the Docker Engine API (unix socket or TCP) and the Kubernetes API.

- Docker: `GET /_ping`, `GET /containers/json?all=1`: every expected container exists and is running, no running
  container is unhealthy (the health status Docker appends to `Status`: "Up 2 hours (unhealthy)").
- Kubernetes: `GET /api/v1/nodes` (every node Ready, none cordoned), `GET /readyz?verbose` and the pods of
  kube-system (the control plane's and add-ons' components running and ready). Reached by URL and bearer token, or
  through a kubeconfig file, read by lightkube (CA, token, client certificate, exec plugins: every form kubectl takes).

Both go through httpx clients bounded by the check's deadline (clients/http.py's `bounded`; for Docker over its unix
socket, httpx's own UDS transport): not the `docker` SDK, whose requests-based client has per-operation timeouts only,
so a daemon trickling its answer could hold a check's thread past its deadline.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from .clients.http import bounded, http_client, req_timeout
from .core import Observation, RunContext, check, failed, failed_if, given
from .models import CaFile, HttpUrl, Target


class DockerTarget(Target):
    url: str = Field("unix:///var/run/docker.sock", description="unix:///path/docker.sock or http(s)://host:port")
    expected_containers: list[str] = Field(
        default_factory=list, description="container names that must exist and be running"
    )

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
    """How golive reaches the Kubernetes API: an API server URL with a bearer token, or a kubeconfig file (what kubectl
    reads: the cluster, its CA, and the user's token, client certificate or exec plugin, e.g. `aws eks get-token`)."""

    api_url: HttpUrl | None = Field(None, description="the API server, https://host:6443 (or: kubeconfig)")
    token: SecretStr | None = Field(None, description="a bearer token (a read-only service account), with api_url")
    kubeconfig: Path | None = Field(None, description="a kubeconfig file, instead of api_url + token")
    context: str | None = Field(None, description="the kubeconfig context to use (default: its current-context)")
    min_ready_nodes: int = Field(1, ge=1)
    system_namespace: str = "kube-system"

    @model_validator(mode="after")
    def _one_way(self) -> KubernetesTarget:
        if (self.api_url is None) == (self.kubeconfig is None):
            raise ValueError("give either api_url (with token) or kubeconfig (with context)")
        if self.kubeconfig is not None and self.token is not None:
            raise ValueError("token goes with api_url; a kubeconfig carries its own credentials")
        if self.kubeconfig is None and self.context is not None:
            raise ValueError("context is a kubeconfig's: give kubeconfig too")
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise ValueError(f"kubeconfig: file not found: {self.kubeconfig}")
        return self

    @property
    def where(self) -> str:
        """The API server as evidence names it (the kubeconfig file and context: the URL is in it)."""
        if self.kubeconfig is None:
            return str(self.api_url)
        return f"kubeconfig {self.kubeconfig}" + (f" (context {self.context})" if self.context else "")


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
        return bounded(
            httpx.Client(
                transport=httpx.HTTPTransport(uds=u.path),
                base_url="http://docker",
                timeout=httpx.Timeout(ctx.remaining),
            ),
            ctx.deadline,
        ), f"--unix-socket {u.path} http://docker"
    base = t.docker.url.replace("tcp://", "http://", 1)
    return http_client(ctx, t.ca_file, base_url=base), base


_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


@check(
    "dependencies.docker.containers",
    title="Docker: the expected containers run and none is unhealthy",
    seed=["2.3 Docker Daemon"],
    timeout=10,
    target="containers",
    needs={"containers.docker": "not containerized with Docker"},
)
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
    evidence = (
        f"Docker Engine API {version}: GET /_ping, GET /containers/json?all=1; re-run: "
        f"`curl -sS {curl_base}/containers/json?all=1 | jq '.[] | {{Names, State, Status}}'` "
        "(or `docker ps -a`)"
    )
    expected = f"{', '.join(t.docker.expected_containers) or 'every container'} running; no running container unhealthy"
    observed: dict[str, Any] = {"containers": seen or "none"}
    if problems:
        observed["problems"] = problems
    return failed_if(problems, observed, expected, evidence)


# --------------------------------------------------------------------------- Kubernetes


def _kubeconfig_client(t: ContainersTarget, k: KubernetesTarget, ctx: RunContext) -> Any:
    """An httpx client for the kubeconfig's cluster and user, built by lightkube (which reads every form kubectl
    does: CA file or data, token, token file, client certificate file or data, exec plugins), then bounded by the
    check's deadline like every client golive uses. A cluster that skips TLS verification is refused: golive never
    sends a credential to a server it cannot verify."""
    import httpx
    from lightkube.config import client_adapter
    from lightkube.config.kubeconfig import KubeConfig

    assert k.kubeconfig is not None
    try:
        single = KubeConfig.from_file(k.kubeconfig).get(context_name=k.context)
    except Exception as e:  # noqa: BLE001 - lightkube's ConfigError, a YAML error, a missing key: one line
        raise ValueError(f"kubeconfig {k.kubeconfig}: {' '.join(str(e).split())[:200]}") from None
    if single is None or single.cluster is None:
        raise ValueError(f"kubeconfig {k.kubeconfig}: no context {k.context or '(current-context)'} with a cluster")
    if single.cluster.insecure:
        raise ValueError(
            f"kubeconfig {k.kubeconfig}: the cluster sets insecure-skip-tls-verify: golive does not send "
            "credentials to a server it cannot verify (give its certificate-authority instead)"
        )
    params = client_adapter.httpx_parameters(single, httpx.Timeout(ctx.remaining), None, False)
    if t.ca_file is not None and isinstance(params.get("verify"), ssl.SSLContext):
        params["verify"].load_verify_locations(cafile=str(t.ca_file))
    return bounded(httpx.Client(**params), ctx.deadline)


def _k8s_get(t: ContainersTarget, ctx: RunContext, path: str) -> Any:
    k = given(t.kubernetes)
    headers = {"Accept": "application/json"}
    if k.kubeconfig is not None:
        client = _kubeconfig_client(t, k, ctx)
        url = path
    else:
        if k.token is not None:
            headers["Authorization"] = f"Bearer {k.token.get_secret_value()}"
        client = http_client(ctx, t.ca_file)
        url = f"{k.api_url}{path}"
    with client as c:
        r = c.get(url, headers=headers, timeout=req_timeout(ctx))
    if r.status_code in (401, 403):
        raise PermissionError(
            f"the Kubernetes API refused GET {path} (HTTP {r.status_code}): check the credentials' RBAC"
        )
    return r


#: what the Kubernetes checks need (the standard NOT_APPLICABLE reason otherwise)
KUBERNETES = {"containers.kubernetes": "not running on Kubernetes"}


def _kubectl(k: KubernetesTarget, what: str) -> str:
    if k.kubeconfig is not None:
        return f"kubectl --kubeconfig {k.kubeconfig}" + (f" --context {k.context}" if k.context else "") + f" {what}"
    return f"kubectl --server {k.api_url} {what}"


@check(
    "dependencies.kubernetes.nodes",
    title="Kubernetes: every node is Ready and schedulable",
    seed=["2.3 Kubernetes Cluster"],
    timeout=10,
    target="containers",
    needs=KUBERNETES,
)
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
    evidence = f"GET /api/v1/nodes of {k.where}; re-run: `{_kubectl(k, 'get nodes')}`"
    out: dict[str, Any] = {"nodes": observed or "none"}
    if problems:
        out["problems"] = problems
    return failed_if(problems, out, f"every node Ready and schedulable, >= {k.min_ready_nodes} ready", evidence)


@check(
    "dependencies.kubernetes.components",
    title="Kubernetes: API server ready and system components healthy",
    seed=["2.3 Kubernetes Cluster"],
    timeout=10,
    target="containers",
    needs=KUBERNETES,
)
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
    evidence = (
        f"GET /readyz?verbose and /api/v1/namespaces/{k.system_namespace}/pods of {k.where}; "
        f"re-run: `{_kubectl(k, 'get --raw /readyz?verbose')}` and "
        f"`{_kubectl(k, f'get pods -n {k.system_namespace}')}`"
    )
    observed: dict[str, Any] = {"readyz": f"HTTP {rz.status_code}", "pods": states or "none"}
    if problems:
        observed["problems"] = problems
    return failed_if(problems, observed, f"/readyz 200; every {k.system_namespace} pod Running and ready", evidence)
