# SPDX-License-Identifier: MIT
"""A real Kubernetes control plane on 127.0.0.1 for the end-to-end tests: etcd (Debian's
etcd-server), kube-apiserver with RBAC, the front proxy and the aggregator, and
kube-controller-manager with the HPA, deployment and replicaset controllers.

Where the binaries come from, first found wins:
  - $KUBEBUILDER_ASSETS: a directory holding kube-apiserver and kube-controller-manager (and
    optionally etcd), the convention of controller-runtime's envtest;
  - $SM_KUBE_XZ_DIR (default: ../shared/kube beside the source tree): kube-apiserver.xz and
    kube-controller-manager.xz, decompressed once into the build directory and checked
    against the SHA256SUMS beside them.
find_binaries() returns None and a reason when neither is there: the suite is then skipped.

Nothing here dials anything but 127.0.0.1: the service CIDR is configuration only."""

import hashlib
import lzma
import os
import shutil
import subprocess
import time
from pathlib import Path

from smtest import CLEAN_ENV, SOURCE_ROOT, free_port, wait_until

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_binaries(cache_dir):
    """Returns ({name: path}, None) or (None, why not)."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found = {n: Path(assets) / n for n in KUBE_BINARIES}
        missing = [str(p) for p in found.values() if not os.access(p, os.X_OK)]
        if missing:
            return None, f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}"
        etcd = Path(assets) / "etcd"
        found["etcd"] = etcd if os.access(etcd, os.X_OK) else shutil.which("etcd")
        if not found["etcd"]:
            return None, "no etcd in KUBEBUILDER_ASSETS or on PATH (apt-get install etcd-server)"
        return found, None

    xz_dir = Path(os.environ.get("SM_KUBE_XZ_DIR", SOURCE_ROOT.parent / "shared" / "kube"))
    sums = {}
    if (xz_dir / "SHA256SUMS").exists():
        for line in (xz_dir / "SHA256SUMS").read_text().splitlines():
            if line.strip():
                digest, name = line.split()
                sums[name.lstrip("*")] = digest
    found = {}
    cache_dir = Path(cache_dir)
    for n in KUBE_BINARIES:
        xz = xz_dir / f"{n}.xz"
        out = cache_dir / n
        if out.exists() and (n not in sums or _sha256(out) == sums[n]):
            found[n] = out
            continue
        if not xz.exists():
            return None, (f"no Kubernetes binaries: set KUBEBUILDER_ASSETS, or put {n}.xz in "
                          f"{xz_dir} (SM_KUBE_XZ_DIR)")
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with lzma.open(xz) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        if n in sums and _sha256(tmp) != sums[n]:
            tmp.unlink()
            return None, f"{xz} does not decompress to the digest in SHA256SUMS"
        tmp.chmod(0o755)
        tmp.rename(out)
        found[n] = out
    found["etcd"] = shutil.which("etcd")
    if not found["etcd"]:
        return None, "etcd is not installed (apt-get install etcd-server)"
    return found, None


# ---------------------------------------------------------------------------------------------
# Certificates (openssl): the cluster CA and what it signs, the front-proxy CA, the
# service-account key pair. The scalemetrics serving certificate and the front-proxy pair
# come from certs/make-certs.sh, as a user would make them.


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _sign(d, name, subj, ca, ext):
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subj, "-out", f"{name}.csr", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
             cwd=d)


def make_cluster_certs(d):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "cluster-ca.key", "-out", "cluster-ca.crt", "-days", "2",
             "-subj", "/CN=e2e-cluster-ca", cwd=d)
    _sign(d, "apiserver", "/CN=kube-apiserver", "cluster-ca",
          "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
          "extendedKeyUsage=serverAuth\n"
          "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n")
    client_ext = ("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                  "extendedKeyUsage=clientAuth\n")
    _sign(d, "admin", "/O=system:masters/CN=e2e-admin", "cluster-ca", client_ext)
    _sign(d, "controller-manager", "/CN=system:kube-controller-manager", "cluster-ca",
          client_ext)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    return d


def write_kubeconfig(path, server, ca, cert=None, key=None, token=None):
    user = (f"    client-certificate: {cert}\n    client-key: {key}\n" if cert
            else f"    token: {token}\n")
    Path(path).write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: e2e
  user:
{user}contexts:
- name: e2e
  context:
    cluster: e2e
    user: e2e
current-context: e2e
""")
    return Path(path)


class Process:
    """A child process with its log in a file; stop() is SIGTERM then SIGKILL."""

    def __init__(self, name, argv, log_dir):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_dir) / f"{name}.log"
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, env=CLEAN_ENV, start_new_session=True)
        log.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, n=4000):
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, all on 127.0.0.1.
    `kubectl(...)` runs kubectl as a cluster admin."""

    def __init__(self, binaries, workdir, front_proxy, hpa_sync="5s"):
        self.bin = binaries
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.certs = make_cluster_certs(self.dir / "pki")
        self.front_proxy = front_proxy  # {"ca", "cert", "key"} from certs/make-certs.sh
        self.hpa_sync = hpa_sync
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = self.certs / "cluster-ca.crt"
        self.admin_kubeconfig = write_kubeconfig(self.dir / "admin.kubeconfig", self.url,
                                                 self.ca, self.certs / "admin.crt",
                                                 self.certs / "admin.key")
        self.procs = []

    # -- starting and stopping ------------------------------------------------------------

    def start(self):
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        etcd = Process("etcd", [
            self.bin["etcd"], "--name", "e2e", "--data-dir", self.dir / "etcd",
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"e2e={peer_url}", "--log-level", "warn"], self.dir)
        self.procs.append(etcd.start())
        wait_until(lambda: self._etcd_healthy(etcd_url), 20, what="etcd")

        c = self.certs
        fp = self.front_proxy
        api = Process("kube-apiserver", [
            self.bin["kube-apiserver"],
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", f"--secure-port={self.port}",
            "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
            "--service-cluster-ip-range=10.96.0.0/16",  # configuration only: never dialled
            f"--tls-cert-file={c / 'apiserver.crt'}",
            f"--tls-private-key-file={c / 'apiserver.key'}",
            f"--client-ca-file={c / 'cluster-ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={c / 'sa.pub'}",
            f"--service-account-signing-key-file={c / 'sa.key'}",
            f"--requestheader-client-ca-file={fp['ca']}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={fp['cert']}",
            f"--proxy-client-key-file={fp['key']}",
            "--disable-admission-plugins=ServiceAccount",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            "--profiling=false"], self.dir)
        self.procs.append(api.start())
        wait_until(lambda: self._apiserver_ready(api), 60, interval=0.25, what="kube-apiserver")

        kcm_cfg = write_kubeconfig(self.dir / "controller-manager.kubeconfig", self.url, self.ca,
                                   c / "controller-manager.crt", c / "controller-manager.key")
        kcm = Process("kube-controller-manager", [
            self.bin["kube-controller-manager"], f"--kubeconfig={kcm_cfg}",
            "--controllers=horizontal-pod-autoscaler-controller,deployment-controller,"
            "replicaset-controller",
            f"--horizontal-pod-autoscaler-sync-period={self.hpa_sync}",
            "--leader-elect=false", "--use-service-account-credentials",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            f"--authentication-kubeconfig={kcm_cfg}",
            f"--authorization-kubeconfig={kcm_cfg}",
            f"--cert-dir={self.dir / 'kcm-certs'}"], self.dir)
        self.procs.append(kcm.start())
        self.kcm = kcm
        self.apiserver = api
        return self

    def _etcd_healthy(self, url):
        import urllib.request
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url + "/health", timeout=2) as r:
            return b"true" in r.read()

    def _apiserver_ready(self, proc):
        if not proc.alive():
            from smtest import Fatal
            raise Fatal(f"kube-apiserver exited:\n{proc.tail()}")
        r = self.kubectl("get", "--raw", "/readyz", check=False)
        return r.returncode == 0 and r.stdout.strip() == "ok"

    def stop(self):
        for p in reversed(self.procs):
            p.stop()

    def logs(self):
        return "\n".join(f"--- {p.name} ---\n{p.tail()}" for p in self.procs)

    # -- kubectl ----------------------------------------------------------------------------

    def kubectl(self, *args, input=None, check=True, kubeconfig=None, timeout=60):
        r = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig or self.admin_kubeconfig),
                            *map(str, args)],
                           input=input, capture_output=True, text=True, timeout=timeout,
                           env=CLEAN_ENV)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(map(str, args))}: {r.stderr}{r.stdout}")
        return r

    def apply(self, manifest_text):
        return self.kubectl("apply", "-f", "-", input=manifest_text)

    def json(self, *args):
        import json
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def raw(self, path, check=True):
        return self.kubectl("get", "--raw", path, check=check)

    def token(self, namespace, serviceaccount, duration="2h"):
        return self.kubectl("create", "token", serviceaccount, "-n", namespace,
                            f"--duration={duration}").stdout.strip()

    def wait_replicas(self, namespace, deployment, want, timeout, what=None):
        """Waits until the Deployment's spec.replicas (what the HPA sets) equals want; on a
        timeout the error carries `kubectl describe hpa` of the HPA named like it."""
        def check():
            d = self.json("get", "deployment", deployment, "-n", namespace)
            return d["spec"].get("replicas") == want
        t0 = time.monotonic()
        try:
            wait_until(check, timeout, interval=0.5,
                       what=what or f"{namespace}/{deployment} at {want} replicas")
        except AssertionError as e:
            hpa = self.kubectl("describe", "hpa", deployment, "-n", namespace, check=False).stdout
            raise AssertionError(f"{e}\n{hpa}") from None
        return time.monotonic() - t0
