# SPDX-License-Identifier: MIT
"""Fixtures for the end-to-end suite: a real control plane (controlplane.py), scalemetrics
registered with it from the project's own manifests, and the real sources it reads (Redis,
PostgreSQL + PgBouncer, pods serving /metrics).

How scalemetrics is registered, as a user would, with only what cannot work on loopback
replaced:
  - `kubectl kustomize manifests/base` is applied as rendered (namespace, service account,
    RBAC, the Deployment and its ConfigMap: its pod stays Pending, there is no kubelet);
  - the Service becomes `type: ExternalName`, `externalName: localhost`, so the aggregator
    dials localhost:<APIService port>; the APIServices get that port and a `caBundle` (the CA
    of certs/make-certs.sh, whose serving certificate names scalemetrics.scalemetrics.svc,
    the name the aggregator verifies);
  - the binary runs here, as the `scalemetrics` service account (a token from the
    TokenRequest API), with delegated auth against the real kube-apiserver.

Without Kubernetes binaries the whole suite is one skipped test saying why."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from controlplane import ControlPlane, find_binaries  # noqa: E402
from smtest import (BINARY, SOURCE_ROOT, RedisServer, Server, free_port,  # noqa: E402
                    make_certs, wait_until)

NS = "default"  # where the scenarios' workloads and HPAs live
HPA_SYNC = os.environ.get("SM_E2E_HPA_SYNC", "5s")
INTERVAL = os.environ.get("SM_E2E_INTERVAL", "1s")
# Three rounds, as the server's default; the Redis source's is written out so that the failure
# scenarios know how long a dead Redis takes to show.
MAX_AGE = f"{3 * int(INTERVAL.rstrip('s'))}s"
BUILD_ROOT = Path(os.environ.get("SM_BUILD_ROOT", SOURCE_ROOT / "build"))

_binaries, _why = (None, None)
if os.environ.get("SM_E2E_SKIP"):
    _why = f"SM_E2E_SKIP={os.environ['SM_E2E_SKIP']}"
else:
    try:
        _binaries, _why = find_binaries(BUILD_ROOT / "e2e-kube")
    except OSError as e:
        _why = f"Kubernetes binaries unusable: {e}"
if not _why and not shutil.which("kubectl"):
    _why = "kubectl is not installed (apt-get install kubernetes-client)"

if _why:
    # One clear line, one skipped test (test_control_plane.py): not every scenario skipped
    # with the same words.
    collect_ignore = [p.name for p in HERE.glob("test_*.py") if p.name != "test_control_plane.py"]


def control_plane_missing():
    """Why the suite cannot run here, or None."""
    return _why


@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="sm-e2e-"))
    yield d
    if not os.environ.get("SM_E2E_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def sm_certs(workdir):
    d = workdir / "sm-certs"
    bundle = make_certs(d, "scalemetrics")
    return {"dir": d, "ca": d / "ca.crt", "cert": d / "tls.crt", "key": d / "tls.key",
            "ca_bundle": bundle, "client_cert": d / "client.crt", "client_key": d / "client.key",
            "front_proxy_ca": d / "front-proxy-ca.crt",
            "front_proxy_cert": d / "front-proxy-client.crt",
            "front_proxy_key": d / "front-proxy-client.key"}


@pytest.fixture(scope="session")
def cluster(workdir, sm_certs):
    cp = ControlPlane(_binaries, workdir / "cluster",
                      {"ca": sm_certs["front_proxy_ca"], "cert": sm_certs["front_proxy_cert"],
                       "key": sm_certs["front_proxy_key"]}, hpa_sync=HPA_SYNC)
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()
        for p in cp.procs:
            keep_log(p.log_path, p.log_path.name)


def keep_log(path, name):
    """Copies a component's log to $SM_TEST_ARTIFACTS/e2e (CI keeps them)."""
    artifacts = os.environ.get("SM_TEST_ARTIFACTS")
    if artifacts and Path(path).exists():
        out = Path(artifacts) / "e2e"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / name)


def render_manifests(sm_port, ca_bundle):
    """The project's base manifests, rendered with kustomize, as objects to apply."""
    import yaml
    r = subprocess.run(["kubectl", "kustomize", str(SOURCE_ROOT / "manifests" / "base")],
                       capture_output=True, text=True, check=True)
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    for d in docs:
        if d["kind"] == "Service" and d["metadata"]["name"] == "scalemetrics":
            d["spec"] = {"type": "ExternalName", "externalName": "localhost",
                         "ports": d["spec"]["ports"]}
        if d["kind"] == "APIService":
            d["spec"]["caBundle"] = ca_bundle
            d["spec"]["service"]["port"] = sm_port
    return docs


class Scalemetrics(Server):
    """The binary, registered behind the aggregator; restart() keeps its port and config."""

    def restart(self):
        if self.running():
            self.stop()
        return self.start()


# SM_E2E_IMAGE=scalemetrics:0.1.0 (scripts/image.sh prints the reference): run the image
# instead of the binary, with the rendered Deployment's args, volume paths and security
# context, so those are checked against the real image too.
IMAGE = os.environ.get("SM_E2E_IMAGE")


def docs_of(cluster):
    return cluster.rendered


class ImageScalemetrics(Scalemetrics):
    """The image under podman as the Deployment runs it: its args, its read-only root, its
    user, no capabilities, the config and serving certificate at the Deployment's mount paths.
    The rest of the work dir (token, CA, DSN files) is mounted read-only at the same path."""

    def __init__(self, workdir, config, port, certs, e2e_dir, manifests):
        dep = next(d for d in manifests if d["kind"] == "Deployment")
        pod = dep["spec"]["template"]["spec"]
        self.container = pod["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}
        config["server"]["tls"] = {"cert_file": f"{mounts['serving-cert']}/tls.crt",
                                   "key_file": f"{mounts['serving-cert']}/tls.key"}
        super().__init__(workdir, config, port, certs)
        self.name = f"sm-e2e-{port}"
        sc = self.container["securityContext"]
        args = self.container["args"]
        config_dir = os.path.dirname(args[args.index("--config") + 1])
        for p in [e2e_dir, *e2e_dir.rglob("*")]:
            if p.is_dir():
                os.chmod(p, 0o755)
            elif p.is_file():
                os.chmod(p, 0o644)
        self.argv = [
            "podman", "--runtime", "runc", "run", "-d", "--name", self.name,
            "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,size=16m,mode=1777",
            "--user", f"{sc['runAsUser']}:{sc['runAsGroup']}",
            "--group-add", str(pod["securityContext"]["fsGroup"]),
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
            "-v", f"{self.dir}:{config_dir}:ro",
            "-v", f"{certs['dir']}:{mounts['serving-cert']}:ro",
            "-v", f"{e2e_dir}:{e2e_dir}:ro",
            IMAGE, *args]

    def start(self, wait=True):
        subprocess.run(["podman", "rm", "-f", "--ignore", self.name], capture_output=True)
        subprocess.run(self.argv, check=True, capture_output=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["podman", "logs", "-f", self.name], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        if wait:
            wait_until(self._ready, 30, interval=0.2, what="/readyz of the image")
        return self

    def stop(self, timeout=20):
        subprocess.run(["podman", "stop", "-t", str(timeout), self.name], capture_output=True)
        r = subprocess.run(["podman", "inspect", "-f", "{{.State.ExitCode}}", self.name],
                           capture_output=True, text=True)
        subprocess.run(["podman", "rm", "-f", "--ignore", self.name], capture_output=True)
        if self.proc:
            self.proc.wait(10)
            self.log.close()
        return int(r.stdout.strip() or 1)


def sm_config(port, certs, cluster, token_file, sources):
    return {
        "server": {"listen": f"127.0.0.1:{port}",
                   "tls": {"cert_file": str(certs["cert"]), "key_file": str(certs["key"])},
                   "auth": {"mode": "delegated"},
                   "namespace": "scalemetrics",
                   "access_log": True},
        "kubernetes": {"server": cluster.url, "token_file": str(token_file),
                       "ca_file": str(cluster.ca)},
        "sources": sources,
    }


@pytest.fixture(scope="session")
def redis(workdir):
    r = RedisServer(workdir / "redis").start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def pg(workdir):
    from pgfixtures import PgBouncer, Postgres
    pg = Postgres(max_connections=30)
    pg.start()
    pg.sql("CREATE DATABASE app")
    pg.sql("CREATE TABLE jobs (id serial, queue text, state text)", dbname="app")
    bouncer = PgBouncer(pg, pool_size=5)
    bouncer.start()
    yield pg, bouncer
    bouncer.stop()
    pg.cleanup()


@pytest.fixture(scope="session")
def pod_apps():
    """Backend pods' /metrics servers, one per pod IP, started on demand: {ip: PodApp}."""
    from podapp import PodApp
    apps = {}
    port = free_port()

    def get(ip):
        if ip not in apps:
            apps[ip] = PodApp(ip, port).start()
        return apps[ip]
    get.port = port
    get.apps = apps
    yield get
    for a in apps.values():
        a.stop()


def scrape_source(port, interval):
    return {"name": "backend", "type": "scrape",
            "pods": {"namespace": NS, "selector": "tier=web", "port": port,
                     "path": "/metrics", "scheme": "http"},
            "interval": interval, "timeout": "1s", "namespaces": [NS],
            "rates": [{"metric": "http_requests_per_second", "counter": "http_requests_total",
                       "window": "10s", "by": []}],
            "quantiles": [{"metric": "http_request_duration_p95_seconds",
                           "histogram": "http_request_duration_seconds", "quantile": 0.95,
                           "window": "10s"}]}


UPSTREAM_RBAC = """
apiVersion: v1
kind: Namespace
metadata: {name: keda}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: keda-metrics-apiserver, namespace: keda}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: keda-system-auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{kind: ServiceAccount, name: keda-metrics-apiserver, namespace: keda}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: keda-auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role,
          name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: keda-metrics-apiserver, namespace: keda}]
"""


def sharing_doc_rbac():
    """The RBAC docs/sharing.md tells users to apply for scalemetrics on the upstream."""
    text = (SOURCE_ROOT / "docs" / "sharing.md").read_text()
    section = text[text.index("## 3. RBAC"):]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="session")
def upstream(workdir, cluster, redis):
    """The adapter that owned external.metrics.k8s.io before (KEDA's place): a second
    scalemetrics serving `keda_queue_length` (keys keda:*), with delegated auth against the
    same apiserver as its own service account, so it asks the cluster whether scalemetrics'
    service account may read its metrics (docs/sharing.md section 3)."""
    cluster.apply(UPSTREAM_RBAC)
    cluster.apply(sharing_doc_rbac())
    certs_dir = workdir / "upstream-certs"
    make_certs(certs_dir, "keda")
    certs = {"dir": certs_dir, "ca": certs_dir / "ca.crt", "cert": certs_dir / "tls.crt",
             "key": certs_dir / "tls.key", "client_cert": certs_dir / "client.crt",
             "client_key": certs_dir / "client.key"}
    token_file = workdir / "upstream.token"
    token_file.write_text(cluster.token("keda", "keda-metrics-apiserver"))
    port = free_port()
    d = workdir / "upstream"
    d.mkdir()
    sources = [{"name": "keda-jobs", "type": "redis", "address": redis.address,
                "interval": INTERVAL, "timeout": "500ms", "namespaces": [NS],
                "queues": [{"metric": "keda_queue_length", "keys": ["keda:*"],
                            "label": "queue"}]}]
    s = Scalemetrics(d, sm_config(port, certs, cluster, token_file, sources), port, certs,
                     BINARY)
    s.start()
    yield s
    s.stop()
    keep_log(s.log_path, "upstream.log")


@pytest.fixture(scope="session")
def scalemetrics(workdir, cluster, sm_certs, redis, pg, pod_apps, upstream):
    port = free_port()
    cluster.kubectl("create", "namespace", "scalemetrics", check=False)
    docs = render_manifests(port, sm_certs["ca_bundle"])
    for doc in docs:
        cluster.apply(to_yaml_doc(doc))
    cluster.rendered = docs
    token_file = workdir / "scalemetrics.token"
    token_file.write_text(cluster.token("scalemetrics", "scalemetrics"))
    _, bouncer = pg
    sources = [
        {"name": "jobs", "type": "redis", "address": redis.address, "interval": INTERVAL,
         "timeout": "500ms", "max_age": MAX_AGE, "namespaces": [NS],
         "queues": [
             # The README's rule: the part of the key '*' matched is the label `queue`.
             {"metric": "redis_queue_length", "keys": ["queue:*"], "label": "queue"},
             {"metric": "worker_queue_length", "keys": ["work:*"], "label": "queue",
              "object": {"resource": "deployments.apps", "name": "worker-{queue}"}},
             {"preset": "celery"}]},
        {"name": "app-db", "type": "postgresql", "dsn_file": str(workdir / "app-db.dsn"),
         "interval": INTERVAL, "namespaces": [NS],
         "queries": [{"metric": "pending_jobs",
                      "sql": "SELECT count(*) FROM jobs WHERE state = 'pending'"}]},
        {"name": "bouncer", "type": "pgbouncer", "dsn_file": str(workdir / "bouncer.dsn"),
         "interval": INTERVAL, "namespaces": [NS]},
        scrape_source(pod_apps.port, INTERVAL),
    ]
    (workdir / "bouncer.dsn").write_text(bouncer.admin_dsn() + "\n")
    (workdir / "app-db.dsn").write_text(pg[0].dsn("app") + "\n")
    d = workdir / "scalemetrics"
    d.mkdir()
    config = sm_config(port, sm_certs, cluster, token_file, sources)
    # Installed beside the upstream (docs/sharing.md): we own the APIService and pass on what
    # we do not serve, with our service account's token.
    config["forward"] = [{"group": "external.metrics.k8s.io",
                          "url": f"https://127.0.0.1:{upstream.port}",
                          "ca_file": str(upstream.certs["ca"]), "token_file": str(token_file),
                          "timeout": "5s"}]
    if IMAGE:
        s = ImageScalemetrics(d, config, port, sm_certs, workdir, docs_of(cluster))
    else:
        s = Scalemetrics(d, config, port, sm_certs, BINARY)
    s.start()
    try:
        wait_apiservices(cluster, True, 60)
        yield s
    finally:
        s.stop()
        keep_log(s.log_path, "scalemetrics.log")


def to_yaml_doc(doc):
    import yaml
    return yaml.safe_dump(doc, sort_keys=False)


APISERVICES = ("v1beta1.external.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io",
               "v1beta2.custom.metrics.k8s.io")


def apiservice_available(cluster, name):
    doc = cluster.json("get", "apiservice", name)
    for c in doc.get("status", {}).get("conditions", []):
        if c["type"] == "Available":
            return c
    return None


def wait_apiservices(cluster, available, timeout):
    want = "True" if available else "False"

    def check():
        conds = [apiservice_available(cluster, n) for n in APISERVICES]
        return all(c and c["status"] == want for c in conds) and conds
    return wait_until(check, timeout, interval=0.5, what=f"APIServices Available={want}")
