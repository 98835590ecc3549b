# SPDX-License-Identifier: MIT
"""The paths a user and the HPA take through kube-apiserver's aggregator: every
`kubectl get --raw` example in README.md and docs/, aggregated discovery, and delegated
authentication and authorization against the real apiserver (TokenReview,
SubjectAccessReview, trust from kube-system/extension-apiserver-authentication)."""

import json
import re
import subprocess

import psycopg2
import pytest

from conftest import NS
from smtest import CLEAN_ENV, EXTERNAL, SOURCE_ROOT, wait_until
from workloads import deployment, external, hpa

EXAMPLE = re.compile(r"kubectl get --raw '?(/apis/[^'\s`|]*)")


def doc_examples():
    """Every `kubectl get --raw PATH` in README.md and docs/*.md without a placeholder."""
    found = []
    for f in [SOURCE_ROOT / "README.md", *sorted((SOURCE_ROOT / "docs").glob("*.md"))]:
        for m in EXAMPLE.finditer(f.read_text()):
            path = m.group(1)
            if re.search(r"/(NS|METRIC|RESOURCE|NAME)\b|KEY%3DVALUE", path):
                continue  # a template, not an example
            found.append(pytest.param(path, id=f"{f.name}:{path}"))
    return found


@pytest.mark.parametrize("path", doc_examples())
def test_documented_raw_query_through_the_aggregator(cluster, scalemetrics, redis, pg, path):
    # What the examples read exists: the README's queue, a pending job, PgBouncer's pool for
    # database app (PgBouncer makes a pool at its first client).
    redis.client().rpush("queue:emails", "a-job")
    pg[0].sql("INSERT INTO jobs (queue, state) VALUES ('emails', 'pending')", dbname="app")
    with psycopg2.connect(pg[1].dsn()) as c:
        c.cursor().execute("SELECT 1")

    def answered():
        r = cluster.raw(path, check=False)
        if r.returncode != 0:
            return None
        doc = json.loads(r.stdout)
        return doc if doc["kind"] == "APIResourceList" or doc.get("items") else None
    doc = wait_until(answered, 15, what=f"kubectl get --raw {path} with items")
    assert doc["kind"] in ("APIResourceList", "ExternalMetricValueList", "MetricValueList"), doc


def test_aggregated_discovery_lists_both_groups(cluster, scalemetrics):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    out = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "--cacert", str(cluster.ca),
         "--cert", str(cluster.certs / "admin.crt"), "--key", str(cluster.certs / "admin.key"),
         "-H", f"Accept: {accept}", f"{cluster.url}/apis"],
        capture_output=True, text=True, check=True, env=CLEAN_ENV, timeout=30).stdout
    doc = json.loads(out)
    assert doc["kind"] == "APIGroupDiscoveryList", doc
    groups = {g["metadata"]["name"]: g for g in doc["items"]}
    for group, versions in (("external.metrics.k8s.io", ["v1beta1"]),
                            ("custom.metrics.k8s.io", ["v1beta2", "v1beta1"])):
        assert group in groups, sorted(groups)
        got = [v["version"] for v in groups[group]["versions"]]
        assert got == versions, groups[group]
    ext = groups["external.metrics.k8s.io"]["versions"][0]
    names = {r["resource"] for r in ext.get("resources", [])}
    assert "redis_queue_length" in names, ext


@pytest.mark.parametrize("verb,resource,namespace", [
    ("create", "tokenreviews.authentication.k8s.io", None),
    ("create", "subjectaccessreviews.authorization.k8s.io", None),
    ("get", "configmaps/extension-apiserver-authentication", "kube-system"),
    ("list", "pods", NS),
    ("watch", "pods", NS),
])
def test_project_rbac_grants_what_scalemetrics_uses(cluster, scalemetrics, verb, resource,
                                                    namespace):
    """manifests/base/rbac.yaml, applied to a real apiserver, grants the scalemetrics service
    account each call it makes (none of these come from the bootstrap policy)."""
    args = ["auth", "can-i", verb, resource, "--as=system:serviceaccount:scalemetrics:scalemetrics"]
    if namespace:
        args += ["-n", namespace]
    r = cluster.kubectl(*args, check=False)
    assert r.stdout.strip() == "yes", r


def token_request(cluster, scalemetrics, token, path):
    return subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "--cacert", str(scalemetrics.certs["ca"]),
         "-H", f"Authorization: Bearer {token}", "-w", "\n%{http_code}",
         f"https://127.0.0.1:{scalemetrics.port}{path}"],
        capture_output=True, text=True, env=CLEAN_ENV, timeout=30).stdout.rsplit("\n", 1)


def test_bearer_tokens_reviewed_by_the_real_apiserver(cluster, scalemetrics, redis):
    """Straight to scalemetrics with a service-account token: TokenReview and
    SubjectAccessReview go to kube-apiserver, which answers from its own RBAC."""
    redis.client().rpush("queue:emails", "a-job")
    for sa in ("reader", "nobody"):
        cluster.kubectl("create", "serviceaccount", sa, "-n", NS, check=False)
    cluster.kubectl("create", "clusterrolebinding", "e2e-reader",
                    "--clusterrole=scalemetrics-metrics-reader",
                    f"--serviceaccount={NS}:reader", check=False)
    path = f"{EXTERNAL}/namespaces/{NS}/redis_queue_length?labelSelector=queue%3Demails"
    body, code = token_request(cluster, scalemetrics, cluster.token(NS, "reader"), path)
    assert code == "200", body
    assert json.loads(body)["kind"] == "ExternalMetricValueList"
    body, code = token_request(cluster, scalemetrics, cluster.token(NS, "nobody"), path)
    assert code == "403", body
    status = json.loads(body)
    assert status["reason"] == "Forbidden", status
    assert "system:serviceaccount:default:nobody" in status["message"], status
    body, code = token_request(cluster, scalemetrics, "not-a-token", path)
    assert code == "401", body


def test_access_log_names_the_hpa_controller(cluster, scalemetrics, redis):
    """Through the aggregator the caller is the front proxy's X-Remote-User: the HPA controller
    calls as its own service account (--use-service-account-credentials)."""
    redis.client().rpush("queue:logged", *range(20))
    cluster.apply(deployment("logged-worker", {"role": "worker"}))
    cluster.apply(hpa("logged-worker", external("redis_queue_length", "10", {"queue": "logged"})))
    cluster.wait_replicas(NS, "logged-worker", 2, 60)

    def hpa_line():
        for line in scalemetrics.log_path.read_text(errors="replace").splitlines():
            if ('msg="request"' in line and "queue%3Dlogged" in line
                    and "user=system:serviceaccount:kube-system:horizontal-pod-autoscaler" in line):
                return line
        return None
    line = wait_until(hpa_line, 15, what="an access-log line for the HPA's query")
    assert "auth=front-proxy" in line and "status=200" in line, line
