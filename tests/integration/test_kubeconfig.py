# SPDX-License-Identifier: MIT
"""kubernetes.kubeconfig and $KUBECONFIG against the real binary: kubeconfigs written by
`kubectl config` itself, the Kubernetes API stand-in over TLS with the test CA. The server's
TokenReviews (delegated auth) and pod lists (scrape) go where the kubeconfig says, with its
credentials: a token, or a client certificate from files named relative to the kubeconfig."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kube_standin import KubeStandin
from smtest import (CLEAN_ENV, EXTERNAL, SLOW, Server, free_port, server_config, wait_until)

DISCOVERY = f"{EXTERNAL}"


@pytest.fixture(scope="module", autouse=True)
def need_kubectl():
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed (Debian: apt-get install kubernetes-client)")


def kubectl_config(path, *args):
    subprocess.run(["kubectl", "config", f"--kubeconfig={path}", *args], check=True,
                   capture_output=True, text=True, env=CLEAN_ENV, timeout=30)


def start(tmp_root, certs, binary, sources, kubernetes=None, auth=None, env=None, wait=True):
    port = free_port()
    cfg = server_config(port, certs, sources)
    if auth:
        cfg["server"]["auth"] = auth
    if kubernetes is not None:
        cfg["kubernetes"] = kubernetes
    d = Path(tempfile.mkdtemp(prefix="kcfg-server-", dir=tmp_root))
    s = Server(d, cfg, port, certs, binary)
    # Whoever runs the tests may have a kubeconfig of their own: never use it.
    s.env.pop("KUBECONFIG", None)
    s.env["HOME"] = str(d)
    s.env.pop("KUBERNETES_SERVICE_HOST", None)
    s.env.update(env or {})
    return s.start(wait=wait)


@pytest.fixture
def servers():
    started = []
    yield started
    for s in started:
        if s.proc is not None and not s.log.closed:
            assert s.stop() == 0, s.log_text()


def delegated(certs):
    """Delegated auth with both CAs from files, so that only reviews reach the API."""
    return {"mode": "delegated", "cache_ttl": "0s",
            "requestheader_client_ca_file": str(certs["front_proxy_ca"]),
            "client_ca_file": str(certs["ca"]),
            "requestheader_allowed_names": ["front-proxy-client"]}


def pods_source():
    return {"name": "backend", "type": "scrape", "interval": "1s", "timeout": "800ms",
            "max_age": "5s",
            "pods": {"namespace": "default", "selector": "app=backend", "port": 8000},
            "gauges": [{"metric": "inflight_requests", "gauge": "http_inflight_requests"}]}


def test_delegated_auth_uses_the_kubeconfig_context(tmp_root, certs, binary, servers):
    """The TokenReview goes to the named context's cluster, verified with its embedded CA
    (certificate-authority-data), with its user's token; the current context (an exec plugin
    user on an unreachable server) is not touched."""
    kube = KubeStandin(certfile=certs["cert"], keyfile=certs["key"], token="sm-token").start()
    try:
        kube.tokens = {"alice-token": {"username": "alice", "uid": "1", "groups": ["devs"]}}
        kube.sar_rules = [{"user": "alice", "allowed": True}]
        kc = Path(tempfile.mkdtemp(prefix="kcfg-", dir=tmp_root)) / "config"
        kubectl_config(kc, "set-cluster", "standin", f"--server={kube.url}",
                       f"--certificate-authority={certs['ca']}", "--embed-certs=true")
        kubectl_config(kc, "set-credentials", "scalemetrics", "--token=sm-token")
        kubectl_config(kc, "set-context", "standin", "--cluster=standin",
                       "--user=scalemetrics")
        kubectl_config(kc, "set-cluster", "gke", f"--server=https://127.0.0.1:{free_port()}")
        kubectl_config(kc, "set-credentials", "gke",
                       "--exec-command=gke-gcloud-auth-plugin",
                       "--exec-api-version=client.authentication.k8s.io/v1beta1")
        kubectl_config(kc, "set-context", "gke", "--cluster=gke", "--user=gke")
        kubectl_config(kc, "use-context", "gke")
        text = kc.read_text()
        assert "certificate-authority-data:" in text and "current-context: gke" in text, text
        kube.clear()

        s = start(tmp_root, certs, binary, [], auth=delegated(certs),
                  kubernetes={"kubeconfig": str(kc), "context": "standin"})
        servers.append(s)
        r = s.get(DISCOVERY, headers={"Authorization": "Bearer alice-token"})
        assert r.status == 200, r
        reviews = kube.reviews("TokenReview")
        assert [rv["spec"]["token"] for rv in reviews] == ["alice-token"], reviews
        assert {auth for _, _, auth in kube.requests} == {"Bearer sm-token"}, kube.requests
        assert (f"Kubernetes API for access reviews: {kube.url} "
                f"(from kubeconfig '{kc}', context 'standin')") in s.log_text()

        # An unknown token is refused after its review, through the same kubeconfig.
        r = s.get(DISCOVERY, headers={"Authorization": "Bearer mallory"})
        assert r.status == 401, r
    finally:
        kube.stop()


def test_KUBECONFIG_client_certificate_relative_paths(tmp_root, certs, binary, servers):
    """No kubernetes section: $KUBECONFIG (a missing file first, as kubectl allows) gives the
    pod list's server, with tls-server-name, a CA and a client certificate named by paths
    relative to the kubeconfig's directory (the server runs elsewhere)."""
    kube = KubeStandin(certfile=certs["cert"], keyfile=certs["key"],
                       client_ca=certs["ca"]).start()
    try:
        d = Path(tempfile.mkdtemp(prefix="kcfg-", dir=tmp_root))
        (d / "pki").mkdir()
        for name in ("ca.crt", "client.crt", "client.key"):
            shutil.copy(certs["dir"] / name, d / "pki" / name)
        kc = d / "config"
        kc.write_text(f"""apiVersion: v1
kind: Config
preferences: {{}}
clusters:
- name: standin
  cluster:
    server: https://127.0.0.1:{kube.port}
    certificate-authority: pki/ca.crt
    tls-server-name: localhost
users:
- name: tester
  user:
    client-certificate: pki/client.crt
    client-key: pki/client.key
contexts:
- name: standin
  context:
    cluster: standin
    user: tester
current-context: standin
""")
        # kubectl reads the paths the same way: --flatten embeds the files, from elsewhere.
        out = subprocess.run(["kubectl", "config", "view", f"--kubeconfig={kc}", "--raw",
                              "--flatten", "-o", "jsonpath={.users[0].user}"],
                             capture_output=True, text=True, env=CLEAN_ENV, timeout=30,
                             cwd=tmp_root)
        assert "client-key-data" in out.stdout, out
        kube.clear()  # kubectl may have asked the stand-in for /version

        s = start(tmp_root, certs, binary, [pods_source()],
                  env={"KUBECONFIG": f"{d / 'missing'}:{kc}"})
        servers.append(s)
        wait_until(lambda: any(p.startswith("/api/v1/namespaces/default/pods?")
                               for _, p, _ in list(kube.requests)), 10,
                   what="a pod list through the kubeconfig")
        with kube.lock:
            assert kube.client_cns[0] == "scalemetrics-test-user", kube.client_cns
            assert kube.requests[0][2] is None  # no token: the certificate is the credential
    finally:
        kube.stop()


@pytest.mark.parametrize("cluster,why", [
    ({"tls-server-name": "wrong.example"}, "wrong.example"),
    ({}, "certificate"),  # no CA in the kubeconfig: the system store does not know ours
])
def test_the_kubeconfigs_tls_settings_are_applied(tmp_root, certs, binary, servers, cluster,
                                                 why):
    """The negative half of the test above: a name the certificate lacks, or no CA at all,
    fails the pod list with curl's reason (so the settings above were really used)."""
    kube = KubeStandin(certfile=certs["cert"], keyfile=certs["key"]).start()
    try:
        kc = Path(tempfile.mkdtemp(prefix="kcfg-", dir=tmp_root)) / "config"
        kubectl_config(kc, "set-cluster", "standin", f"--server={kube.url}",
                       *([f"--certificate-authority={certs['ca']}", "--embed-certs=true"]
                         if cluster else []),
                       *[f"--{k}={v}" for k, v in cluster.items()])
        kubectl_config(kc, "set-context", "standin", "--cluster=standin")
        kubectl_config(kc, "use-context", "standin")
        kube.clear()
        s = start(tmp_root, certs, binary, [pods_source()], kubernetes={"kubeconfig": str(kc)})
        servers.append(s)
        r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
            s.get(f"{EXTERNAL}/namespaces/default/inflight_requests")), 10,
            what="503 while the pod list cannot be read")
        msg = r.json()["message"]
        assert kube.url in msg and why in msg, msg
        assert kube.requests == []
    finally:
        kube.stop()


def test_exec_plugin_refused_at_start(tmp_root, certs, binary):
    """A user with an exec plugin: the server does not start, and says which file, where, and
    what to use instead."""
    kc = Path(tempfile.mkdtemp(prefix="kcfg-", dir=tmp_root)) / "config"
    kubectl_config(kc, "set-cluster", "eks", "--server=https://127.0.0.1:6443")
    kubectl_config(kc, "set-credentials", "eks", "--exec-command=aws",
                   "--exec-api-version=client.authentication.k8s.io/v1beta1",
                   "--exec-arg=eks", "--exec-arg=get-token")
    kubectl_config(kc, "set-context", "eks", "--cluster=eks", "--user=eks")
    kubectl_config(kc, "use-context", "eks")
    line = next(i for i, t in enumerate(kc.read_text().splitlines(), 1)
                if t.strip() == "exec:")
    s = start(tmp_root, certs, binary, [], auth=delegated(certs),
              kubernetes={"kubeconfig": str(kc)}, wait=False)
    try:
        assert s.proc.wait(15 * SLOW) != 0
    finally:
        s.log.close()
    log = s.log_text()
    assert f"kubeconfig {kc}:{line}:5: user 'eks' uses an exec credential plugin" in log, log
    assert "'tokenFile'" in log and "client certificate" in log, log
