# SPDX-License-Identifier: MIT
"""The container image as a Deployment runs it (manifests/base/deployment.yaml: its user,
group, fsGroup, args, mount paths, read-only root with an emptyDir on /tmp, no capabilities,
no privilege escalation): serves /readyz and a Redis metric over TLS, reloads its certificate
when kubelet swaps the Secret volume's `..data` symlink, stops cleanly on SIGTERM within the
grace period. And what is in it: the binary, its libraries, nothing to run besides.

The start-up time and RSS each run measures are printed and kept in
$SM_TEST_ARTIFACTS/image/figures.json (bench/README.md has the commands for the published
figures)."""

import json
import os
import random
import shutil
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from conftest import ARTIFACTS, ULIMITS, podman
from smtest import (EXTERNAL, SOURCE_ROOT, cert_fingerprint, free_port, make_certs,
                    peer_fingerprint, request, to_yaml, wait_until)


def deployment_container():
    """The base Deployment's pod spec and its one container."""
    with open(SOURCE_ROOT / "manifests" / "base" / "deployment.yaml") as f:
        dep = yaml.safe_load(f)
    spec = dep["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


def mount_path(name):
    _, c = deployment_container()
    return next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == name)


class KubeVolume:
    """A Secret or ConfigMap volume as kubelet's atomic writer lays it out: the files in a
    timestamped directory `..2026_12_06_15_04_05.123456789`, `..data` -> that directory, and
    one symlink per key (`tls.crt` -> `..data/tls.crt`). An update writes a new timestamped
    directory, points `..data_tmp` at it, renames `..data_tmp` over `..data` (the one atomic
    step) and removes the old directory. Files are root-owned, group fsGroup, mode 0644 (the
    default defaultMode)."""

    def __init__(self, root, gid):
        self.root = Path(root)
        self.gid = gid
        self.root.mkdir(parents=True)
        os.chmod(self.root, 0o755)
        self.current = None

    def write(self, files):
        stamp = datetime.now(timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.")
        d = self.root / f"{stamp}{random.randrange(10**9, 10**10)}"
        d.mkdir()
        os.chmod(d, 0o755)
        for name, content in files.items():
            p = d / name
            p.write_bytes(content)
            os.chown(p, 0, self.gid)
            os.chmod(p, 0o644)
        tmp = self.root / "..data_tmp"
        os.symlink(d.name, tmp)
        os.replace(tmp, self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if self.current:
            shutil.rmtree(self.current)
        self.current = d


def secret_files(certdir):
    return {k: (Path(certdir) / k).read_bytes() for k in ("tls.crt", "tls.key", "ca.crt")}


class Container:
    """One `podman run -d` of the image, with the Deployment's security context."""

    def __init__(self, image, name, volumes):
        spec, c = deployment_container()
        sc = c["securityContext"]
        self.user = f"{sc['runAsUser']}:{sc['runAsGroup']}"
        self.fs_group = spec["securityContext"]["fsGroup"]
        self.image = image
        self.name = name
        self.args = [
            "run", "-d", "--name", name, "--network", "host",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=16m,mode=1777",
            "--user", self.user, "--group-add", str(self.fs_group),
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", *ULIMITS]
        for host, path in volumes:
            self.args += ["-v", f"{host}:{path}:ro"]
        self.args.append(image)  # no command: the image's CMD is the Deployment's args
        self.started = None

    def start(self):
        podman("rm", "-f", "--ignore", self.name)
        self.started = time.monotonic()
        podman(*self.args)
        return self

    def inspect(self):
        return json.loads(podman("inspect", self.name).stdout)[0]

    def pid(self):
        return self.inspect()["State"]["Pid"]

    def running(self):
        return self.inspect()["State"]["Running"]

    def logs(self):
        p = podman("logs", self.name, check=False)
        return (p.stdout + p.stderr)[-6000:]

    def status(self):
        """/proc/PID/status of the server, read on the host, as a dict."""
        text = Path(f"/proc/{self.pid()}/status").read_text()
        return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)

    def remove(self):
        podman("rm", "-f", "--ignore", "-t", "0", self.name, check=False)


def wait_ready(ctr, port, ca, timeout=20):
    def ready():
        if not ctr.running():
            raise AssertionError(f"the container exited:\n{ctr.logs()}")
        return request(port, "/readyz", ca=ca, timeout=2).status == 200
    try:
        wait_until(ready, timeout, interval=0.05, what="/readyz from the container")
    except AssertionError as e:
        raise AssertionError(f"{e}\ncontainer log:\n{ctr.logs()}") from None
    return time.monotonic() - ctr.started


def config_yaml(port, redis):
    certs = mount_path("serving-cert")
    return to_yaml({
        "server": {"listen": f"127.0.0.1:{port}",
                   "tls": {"cert_file": f"{certs}/tls.crt", "key_file": f"{certs}/tls.key"},
                   "auth": {"mode": "none"}, "namespace": "default"},
        "sources": [{"name": "jobs", "type": "redis", "address": redis.address,
                     "interval": "1s", "timeout": "500ms", "max_age": "3s",
                     "queues": [{"metric": "redis_queue_length", "keys": ["queue:*"],
                                 "label": "queue"}]}]}) + "\n"


class Deployed:
    """The image running with a config volume, a serving-cert volume and a Redis."""

    def __init__(self, image, workdir, redis, name):
        spec, _ = deployment_container()
        gid = spec["securityContext"]["fsGroup"]
        self.port = free_port()
        self.certs = [workdir / f"{name}-certs-1", workdir / f"{name}-certs-2"]
        for d in self.certs:
            make_certs(d)  # each its own CA: a new serial and key
        self.secret = KubeVolume(workdir / f"{name}-serving-cert", gid)
        self.secret.write(secret_files(self.certs[0]))
        self.config = KubeVolume(workdir / f"{name}-config", gid)
        self.config.write({"config.yaml": config_yaml(self.port, redis).encode()})
        self.ctr = Container(image, f"sm-image-test-{os.getpid()}-{name}", [
            (self.config.root, mount_path("config")),
            (self.secret.root, mount_path("serving-cert"))])
        self.ca = self.certs[0] / "ca.crt"
        self.startup = None

    def start(self):
        self.ctr.start()
        self.startup = wait_ready(self.ctr, self.port, self.ca)
        return self

    def get(self, path, ca=None):
        return request(self.port, path, ca=ca or self.ca)


def record(**figures):
    path = ARTIFACTS / "figures.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data.update(figures)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print("figures:", json.dumps(figures))


@pytest.fixture(scope="module")
def deployed(image, workdir, redis_server):
    redis_server.client().delete("queue:emails", "queue:sms")
    redis_server.client().lpush("queue:emails", *[f"job-{i}" for i in range(37)])
    d = Deployed(image, workdir, redis_server, "main")
    try:
        d.start()
        yield d
    finally:
        d.ctr.remove()


# ---- what is in the image ----------------------------------------------------------------

def test_image_holds_the_binary_its_libraries_and_no_shell(image, workdir):
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    cfg = info["Config"]
    _, c = deployment_container()
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["/usr/local/bin/scalemetrics"]
    assert cfg["Cmd"] == c["args"], "the image's CMD is the Deployment's args"
    assert "6443/tcp" in cfg.get("ExposedPorts", {})

    name = f"sm-image-test-{os.getpid()}-export"
    podman("create", "--name", name, image)
    tar = workdir / "export.tar"
    try:
        podman("export", "-o", str(tar), name, timeout=120)
    finally:
        podman("rm", "-f", name, check=False)
    with tarfile.open(tar) as t:
        members = {m.name.lstrip("./"): m for m in t.getmembers()}
    files = {n for n, m in members.items() if m.isfile()}
    # Everything but the libraries, their dpkg records and copyright files, and /etc.
    other = {n for n in files
             if not n.startswith(("usr/lib/x86_64-linux-gnu/", "usr/lib/aarch64-linux-gnu/",
                                  "usr/share/doc/", "var/lib/dpkg/status.d/", "etc/"))
             and n != "usr/lib/os-release"}
    assert other == {"usr/local/bin/scalemetrics"}, f"unexpected files: {sorted(other)}"
    for sh in ("bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/bash", "bin/busybox"):
        assert sh not in members, f"{sh} is in the image"
    assert "etc/ssl/certs/ca-certificates.crt" in files
    assert members["tmp"].isdir() and members["tmp"].mode & 0o1777 == 0o1777
    assert "nonroot:x:65532:65532:" in t_read(tar, "etc/passwd")
    status = [n for n in files if n.startswith("var/lib/dpkg/status.d/")]
    assert {"var/lib/dpkg/status.d/libc6", "var/lib/dpkg/status.d/libcurl4"} <= set(status)
    size = sum(m.size for m in members.values() if m.isfile())
    record(image_files_bytes=size)


def t_read(tar, name):
    with tarfile.open(tar) as t:
        return t.extractfile(name).read().decode()


# ---- running as the Deployment runs it ---------------------------------------------------

def test_runs_read_only_as_non_root_without_capabilities(deployed):
    st = deployed.ctr.status()
    assert st["Uid"].split() == ["65532"] * 4, st["Uid"]
    assert st["Gid"].split() == ["65532"] * 4, st["Gid"]
    assert "65532" in st["Groups"].split()
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
    assert st["NoNewPrivs"].strip() == "1"
    host = deployed.ctr.inspect()["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    record(startup_to_ready_seconds=round(deployed.startup, 3),
           rss_kib_ready=int(st["VmRSS"].split()[0]))


def test_serves_readyz_and_a_redis_metric_over_tls(deployed, redis_server):
    r = deployed.get("/readyz")
    assert r.status == 200, r
    assert peer_fingerprint(deployed.port) == cert_fingerprint(deployed.certs[0] / "tls.crt")
    url = f"{EXTERNAL}/namespaces/default/redis_queue_length?labelSelector=queue%3Demails"

    def value():
        r = deployed.get(url)
        assert r.status == 200, r
        items = r.json()["items"]
        return items and items[0]["value"]
    assert wait_until(value, 10, what="redis_queue_length{queue=emails}") == "37"
    redis_server.client().lpush("queue:emails", "one-more")
    wait_until(lambda: value() == "38", 10, what="the new value within an interval")
    st = deployed.ctr.status()
    record(rss_kib_serving=int(st["VmRSS"].split()[0]), rss_kib_peak=int(st["VmHWM"].split()[0]))


def test_reloads_the_certificate_when_the_secret_is_updated(deployed):
    pid = deployed.ctr.pid()
    old = cert_fingerprint(deployed.certs[0] / "tls.crt")
    new = cert_fingerprint(deployed.certs[1] / "tls.crt")
    assert old != new
    assert peer_fingerprint(deployed.port) == old
    deployed.secret.write(secret_files(deployed.certs[1]))  # kubelet's ..data swap
    wait_until(lambda: peer_fingerprint(deployed.port) == new, 10, interval=0.2,
               what="the certificate of the updated Secret on new connections")
    assert deployed.ctr.pid() == pid, "reloaded in place, not restarted"
    r = deployed.get("/readyz", ca=deployed.certs[1] / "ca.crt")
    assert r.status == 200, r


def test_stops_on_sigterm_within_the_grace_period(image, workdir, redis_server):
    spec, _ = deployment_container()
    grace = spec["terminationGracePeriodSeconds"]
    d = Deployed(image, workdir, redis_server, "stop")
    try:
        d.start()
        # A connection in the middle of a request would be closed too; a plain idle server
        # must exit well before kubelet's SIGKILL.
        t0 = time.monotonic()
        podman("stop", "-t", "10", d.ctr.name, timeout=30)
        took = time.monotonic() - t0
        state = d.ctr.inspect()["State"]
        assert state["ExitCode"] == 0, f"exit code {state['ExitCode']}:\n{d.ctr.logs()}"
        assert not state.get("OOMKilled")
        assert took < min(10, grace), f"stopped after {took:.1f}s (SIGKILL at 10s)"
        record(sigterm_to_exit_seconds=round(took, 3))
    finally:
        d.ctr.remove()
