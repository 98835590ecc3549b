# SPDX-License-Identifier: MIT
"""Reloading the config (docs/configuration.md "Reloading the config") against the real binary
and a real Redis: an edited file, SIGHUP and a ConfigMap volume's `..data` swap each switch the
served metrics in the same process, without closing an open keep-alive connection; an invalid
file keeps the running config and says so on /metrics, /status and in the log (file:line:col);
a source that did not change keeps running (its round counter goes on) while a changed one
restarts; keys that need a restart are named in the log; and requests in flight while the
config is reloaded 20 times in a row all get a whole answer from one config."""

import http.client
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from smtest import (EXTERNAL, SLOW, Server, free_port, redis_source, server_config,
                    tls_context, to_yaml, wait_until)


def metrics(server):
    """{(name, ((label, value), ...)): value} of /metrics."""
    r = server.get("/metrics")
    assert r.status == 200, r
    out = {}
    for fam in text_string_to_metric_families(r.body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def reloads(server, result):
    return val(metrics(server), "scalemetrics_config_reloads_total", result=result)


def rounds_ok(server, source):
    return val(metrics(server), "scalemetrics_source_rounds_total", source=source, result="success")


def ext_path(metric, selector=None):
    p = f"{EXTERNAL}/namespaces/default/{metric}"
    return p + ("?labelSelector=" + selector if selector else "")


class KeepAlive:
    """One HTTPS connection, reused; fails the test if it was ever reopened."""

    def __init__(self, server):
        self.conn = http.client.HTTPSConnection("127.0.0.1", server.port,
                                                context=tls_context(server.certs["ca"]),
                                                timeout=10 * SLOW)
        self.conn.connect()
        self.sock = self.conn.sock

    def get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        body = r.read()
        assert self.conn.sock is self.sock, "the keep-alive connection was closed and reopened"
        assert not r.will_close, "the server closed the keep-alive connection"
        return r.status, body

    def close(self):
        self.conn.close()


def write_config(server, sources, path=None, **server_extra):
    """Writes the config as the test fixtures make it, atomically (rename over the file)."""
    path = Path(path or server.config_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(to_yaml(server_config(server.port, server.certs, sources, **server_extra))
                   + "\n")
    os.rename(tmp, path)


def queues(*metrics):
    return [{"metric": m, "keys": [f"{m}:*"]} for m in metrics]


@pytest.fixture
def db(redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.flushdb()
    r.lpush("alpha:a", *range(3))
    r.lpush("beta:b", *range(5))
    r.lpush("gamma:c", *range(7))
    return redis_db


def test_added_rule_is_served_by_the_same_process_on_the_same_connection(
        start_server, redis_server, db):
    srv = start_server([redis_source(redis_server, db, queues=queues("alpha"))])
    pid = srv.pid
    ka = KeepAlive(srv)
    try:
        wait_until(lambda: ka.get(ext_path("alpha"))[0] == 200, 10, what="alpha served")
        assert ka.get(ext_path("beta"))[0] == 404

        write_config(srv, [redis_source(redis_server, db, queues=queues("alpha", "beta"))])

        def beta_served():
            status, body = ka.get(ext_path("beta", "queue%3Db"))
            return status == 200 and b'"value":"5"' in body
        wait_until(beta_served, 10, what="beta served after the reload")
        assert ka.get(ext_path("alpha"))[0] == 200
        assert srv.pid == pid and srv.running()
        assert reloads(srv, "success") == 1
        assert reloads(srv, "failure") == 0
        assert val(metrics(srv), "scalemetrics_config_last_reload_successful") == 1
    finally:
        ka.close()
    assert "config reloaded" in srv.log_text()


def test_sighup_reloads_even_an_unchanged_file(start_server, redis_server, db):
    srv = start_server([redis_source(redis_server, db, queues=queues("alpha"))])
    srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: reloads(srv, "success") == 1, 10, what="a reload counted")
    assert srv.running()
    # The file did not change: the one source was kept, nothing restarted.
    assert "1 kept running, 0 started" in srv.log_text()


def test_invalid_file_keeps_the_running_config(start_server, redis_server, db):
    srv = start_server([redis_source(redis_server, db, queues=queues("alpha"))])
    ka = KeepAlive(srv)
    try:
        wait_until(lambda: ka.get(ext_path("alpha"))[0] == 200, 10, what="alpha served")
        good = srv.config_path.read_text()
        # An unknown key in the source, at a known line and column.
        lines = good.splitlines()
        i = next(k for k, line in enumerate(lines) if line.strip().startswith("- name:"))
        indent = len(lines[i]) - len(lines[i].lstrip()) + 2
        lines.insert(i + 1, " " * indent + "no_such_key: 1")
        tmp = srv.config_path.with_name("config.yaml.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.rename(tmp, srv.config_path)

        wait_until(lambda: reloads(srv, "failure") == 1, 10, what="a failed reload")
        m = metrics(srv)
        assert val(m, "scalemetrics_config_last_reload_successful") == 0
        assert val(m, "scalemetrics_config_reloads_total", result="success") == 0
        # The old config still serves, on the same connection.
        assert ka.get(ext_path("alpha"))[0] == 200
        where = f"{srv.config_path}:{i + 2}:{indent + 1}:"
        assert where in srv.log_text(), srv.log_text()
        page = srv.get("/status").body.decode()
        assert "last reload failed" in page and "no_such_key" in page, page
        assert srv.running()

        # Fixed: applied, and /metrics says so again.
        tmp.write_text(good)
        os.rename(tmp, srv.config_path)
        wait_until(lambda: reloads(srv, "success") == 1, 10, what="the fixed file applied")
        assert val(metrics(srv), "scalemetrics_config_last_reload_successful") == 1
        assert "last reload failed" not in srv.get("/status").body.decode()
    finally:
        ka.close()


def test_configmap_data_symlink_swap(tmp_root, certs, binary, redis_server, db):
    """The layout kubelet gives a ConfigMap volume: config.yaml -> ..data/config.yaml,
    ..data -> ..<timestamp>; an update writes a new timestamped directory and renames a new
    ..data link over the old one. No signal is sent."""
    d = Path(tmp_root) / f"configmap-{free_port()}"
    d.mkdir()
    port = free_port()
    cfg = server_config(port, certs, [redis_source(redis_server, db, queues=queues("alpha"))])
    srv = Server(d, cfg, port, certs, binary)
    vol = d / "volume"
    first = vol / "..2024_01_01_00_00_00.000000001"
    first.mkdir(parents=True)
    (first / "config.yaml").write_text(to_yaml(cfg) + "\n")
    os.symlink(first.name, vol / "..data")
    os.symlink("..data/config.yaml", vol / "config.yaml")
    srv.config_path = vol / "config.yaml"
    srv.start()
    try:
        assert srv.get(ext_path("alpha")).status == 200
        second = vol / "..2024_01_01_00_01_00.000000002"
        second.mkdir()
        cfg2 = server_config(port, certs,
                             [redis_source(redis_server, db, queues=queues("alpha", "gamma"))])
        (second / "config.yaml").write_text(to_yaml(cfg2) + "\n")
        os.symlink(second.name, vol / "..data_tmp")
        os.rename(vol / "..data_tmp", vol / "..data")
        shutil.rmtree(first)
        wait_until(lambda: srv.get(ext_path("gamma")).status == 200, 10,
                   what="gamma served after the ..data swap")
        assert reloads(srv, "success") == 1
    finally:
        assert srv.stop() == 0


def test_unchanged_source_keeps_its_state_changed_one_restarts(start_server, redis_server, db):
    keep = redis_source(redis_server, db, name="keep", queues=queues("alpha"))
    change = redis_source(redis_server, db, name="change", queues=queues("beta"))
    srv = start_server([keep, change])
    wait_until(lambda: rounds_ok(srv, "keep") >= 3 and rounds_ok(srv, "change") >= 3, 15,
               what="three rounds of each source")
    before_keep = rounds_ok(srv, "keep")

    change2 = dict(change, queues=queues("beta", "gamma"))
    write_config(srv, [keep, change2])
    wait_until(lambda: reloads(srv, "success") == 1, 10, what="the reload")
    m = metrics(srv)
    # The kept source's counter went on; the changed one started again from its first round.
    assert val(m, "scalemetrics_source_rounds_total", source="keep", result="success") >= before_keep
    assert val(m, "scalemetrics_source_rounds_total", source="change", result="success") <= 2
    assert srv.get(ext_path("gamma")).status in (200, 503)
    wait_until(lambda: srv.get(ext_path("gamma")).status == 200, 10, what="gamma served")
    log = srv.log_text()
    assert re.search(r'ctx="?change"? msg="source changed: restarted', log), log
    assert "1 kept running, 1 started" in log, log

    # Removing a source stops it; the other keeps its count.
    before_keep = rounds_ok(srv, "keep")
    write_config(srv, [keep])
    wait_until(lambda: reloads(srv, "success") == 2, 10, what="the second reload")
    m = metrics(srv)
    assert val(m, "scalemetrics_source_rounds_total", source="keep", result="success") >= before_keep
    assert ("scalemetrics_source_rounds_total",
            (("result", "success"), ("source", "change"))) not in m
    assert srv.get(ext_path("beta")).status == 404


def test_restart_only_keys_are_named_and_kept(start_server, redis_server, db):
    srv = start_server([redis_source(redis_server, db, queues=queues("alpha"))])
    write_config(srv, [redis_source(redis_server, db, queues=queues("alpha", "beta"))],
                 limits={"max_connections": 77})
    wait_until(lambda: reloads(srv, "success") == 1, 10, what="the reload")
    log = srv.log_text()
    assert "server.limits.max_connections changed" in log, log
    assert "restart" in log
    wait_until(lambda: srv.get(ext_path("beta")).status == 200, 10, what="beta served")


def test_requests_in_flight_during_20_reloads(start_server, redis_server, db):
    """A thread asks all the time (fresh connections and one keep-alive connection) while the
    config flips 20 times between two shapes; every answer is a whole 200, 404 or 503 from one
    config or the other, never a 500 or a dropped connection. Run under ASan and TSan too."""
    a = [redis_source(redis_server, db, name="one", queues=queues("alpha")),
         redis_source(redis_server, db, name="two", queues=queues("beta"))]
    b = [redis_source(redis_server, db, name="one", queues=queues("alpha")),
         redis_source(redis_server, db, name="three", queues=queues("beta", "gamma"))]
    srv = start_server(a)
    stop = threading.Event()
    seen, errors = {}, []
    paths = [ext_path("alpha"), ext_path("beta"), ext_path("gamma"), "/metrics", "/status",
             "/apis/external.metrics.k8s.io/v1beta1", "/readyz"]

    def hammer():
        ka = KeepAlive(srv)
        i = 0
        try:
            while not stop.is_set():
                p = paths[i % len(paths)]
                i += 1
                try:
                    status, _ = ka.get(p) if i % 2 else (srv.get(p).status, None)
                except Exception as e:  # noqa: BLE001 - any failure is the finding
                    errors.append(f"{p}: {e!r}")
                    return
                seen[status] = seen.get(status, 0) + 1
                if status not in (200, 404, 503):
                    errors.append(f"{p}: {status}")
        finally:
            ka.close()

    t = threading.Thread(target=hammer)
    t.start()
    try:
        for k in range(20):
            write_config(srv, b if k % 2 == 0 else a)
            srv.proc.send_signal(signal.SIGHUP)
            time.sleep(0.15 * SLOW)
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors
    assert seen.get(200, 0) > 20, seen
    wait_until(lambda: reloads(srv, "success") >= 20, 15, what="20 reloads applied")
    assert reloads(srv, "failure") == 0
    assert srv.running()
    # Ends on a: 'two' serves beta again, 'three' (and gamma) are gone.
    wait_until(lambda: srv.get(ext_path("beta")).status == 200, 10, what="beta served")
    assert srv.get(ext_path("gamma")).status == 404
    assert re.search(r"config reloaded: 2 sources", srv.log_text())
