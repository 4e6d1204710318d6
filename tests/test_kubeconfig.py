"""Kubernetes through a kubeconfig file (issue 13, point 4): what kubectl reads (the cluster's CA, the user's token)
reaches the sandbox's HTTPS Kubernetes API fake; a context that does not exist, a cluster that skips TLS verification
and a config with both ways given are refused, each in one line naming the cause, never showing the token."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from golive.tasks.core import Status
from tests.support.checks import as_json, run_one, sandbox_config, with_


@pytest.fixture(scope="module")
def cfg(sandbox):
    return sandbox_config(sandbox)


def kubeconfig(path: Path, server: str, token: str, *, ca: str | None, insecure: bool = False) -> Path:
    cluster = {
        "server": server,
        **({"certificate-authority": ca} if ca else {}),
        **({"insecure-skip-tls-verify": True} if insecure else {}),
    }
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "prod",
                "clusters": [{"name": "prod", "cluster": cluster}],
                "users": [{"name": "golive", "user": {"token": token}}],
                "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "golive"}}],
            }
        )
    )
    return path


def via(cfg, path: Path, **extra):
    k = cfg.containers.kubernetes
    return with_(cfg, "containers", kubernetes={"kubeconfig": str(path), "min_ready_nodes": k.min_ready_nodes, **extra})


def test_a_kubeconfig_with_the_clusters_ca_and_a_token_reads_the_cluster(cfg, tmp_path):
    k = cfg.containers.kubernetes
    path = kubeconfig(
        tmp_path / "kubeconfig", str(k.api_url), k.token.get_secret_value(), ca=str(cfg.containers.ca_file)
    )
    for cid in ("dependencies.kubernetes.nodes", "dependencies.kubernetes.components"):
        r = run_one(cid, via(cfg, path))
        assert r.status == Status.PASS, (cid, r.summary)
        assert f"kubeconfig {path}" in r.evidence and f"kubectl --kubeconfig {path}" in r.evidence
    wrong = kubeconfig(tmp_path / "wrong", str(k.api_url), "Wr0ng-kube-t0ken", ca=str(cfg.containers.ca_file))
    r = run_one("dependencies.kubernetes.nodes", via(cfg, wrong))
    assert r.status == Status.ERROR and "401" in r.cause and "Wr0ng-kube-t0ken" not in as_json(r)


def test_an_unverifiable_cluster_or_a_missing_context_is_refused_in_one_line(cfg, tmp_path):
    k = cfg.containers.kubernetes
    token = k.token.get_secret_value()
    insecure = kubeconfig(tmp_path / "insecure", str(k.api_url), token, ca=None, insecure=True)
    r = run_one("dependencies.kubernetes.nodes", via(cfg, insecure))
    assert r.status == Status.ERROR and "insecure-skip-tls-verify" in r.cause and token not in as_json(r)
    good = kubeconfig(tmp_path / "good", str(k.api_url), token, ca=str(cfg.containers.ca_file))
    r = run_one("dependencies.kubernetes.nodes", via(cfg, good, context="staging"))
    assert r.status == Status.ERROR and "staging" in r.cause and "\n" not in r.cause and token not in as_json(r)


def test_the_config_takes_one_way_to_the_cluster(cfg, tmp_path):
    from golive.tasks.containers import KubernetesTarget

    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\n")
    for bad, why in (
        ({"api_url": "https://k:6443", "kubeconfig": str(path)}, "either api_url"),
        ({}, "either api_url"),
        ({"kubeconfig": str(path), "token": "t"}, "token goes with api_url"),
        ({"api_url": "https://k:6443", "context": "x"}, "context is a kubeconfig's"),
        ({"kubeconfig": str(tmp_path / "nope")}, "file not found"),
    ):
        with pytest.raises(ValueError, match=why):
            KubernetesTarget(**bad)
