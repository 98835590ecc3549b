# SPDX-License-Identifier: MIT
"""How the Redis collector connects, against real redis-servers: unix socket, database
index, AUTH with an ACL user and a password from a file or the environment, a wrong password
(a clear error, never the password), and the config checks of the redis source's own keys."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import smtest
from smtest import (CLEAN_ENV, EXTERNAL, RedisServer, redis_source, to_yaml,
                    wait_external_value, wait_until)


class ExtraRedis(RedisServer):
    """RedisServer with extra command-line arguments."""

    def __init__(self, workdir, *args):
        super().__init__(workdir)
        self.args = list(args)

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             "--logfile", str(self.log), "--daemonize", "no", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=CLEAN_ENV)
        wait_until(self.ping, 10, what=f"redis on {self.port}")
        return self

    def ping(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           password=self.admin_password()).ping()

    def admin_password(self):
        if "--requirepass" in self.args:
            return self.args[self.args.index("--requirepass") + 1]
        return None

    def admin(self, db=0):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=2,
                           password=self.admin_password(), decode_responses=True)


@pytest.fixture(scope="module")
def workdir(tmp_root):
    return Path(tempfile.mkdtemp(prefix="redis-conn-", dir=tmp_root))


@pytest.fixture(scope="module")
def secured(workdir):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    sock = workdir / "redis.sock"
    r = ExtraRedis(workdir / "secured", "--requirepass", "adminpw",
                   "--unixsocket", str(sock), "--unixsocketperm", "700").start()
    a = r.admin()
    a.execute_command("ACL", "SETUSER", "metrics", "on", ">m3trics-pw", "~*", "resetchannels",
                      "+@read", "+@connection", "-@dangerous", "+type", "+scan", "+ping")
    a.rpush("cq:jobs", *range(4))
    r.admin(7).rpush("cq:jobs", *range(9))
    r.sock = sock
    yield r
    r.stop()


def source(r, **extra):
    src = redis_source(r, queues=[{"metric": "c_len", "keys": ["cq:*"]}])
    src.update(extra)
    return src


def test_acl_user_with_password_file(start_server, secured, workdir):
    pw = workdir / "pw"
    pw.write_text("m3trics-pw\n")  # one trailing newline, as echo leaves it
    s = start_server([source(secured, username="metrics", password_file=str(pw))])
    wait_external_value(s, "c_len", "queue%3Djobs", "4")


def test_default_user_with_password_env(start_server, secured, monkeypatch):
    monkeypatch.setitem(CLEAN_ENV, "SM_TEST_REDIS_PW", "adminpw")
    s = start_server([source(secured, password_env="SM_TEST_REDIS_PW")])
    wait_external_value(s, "c_len", "queue%3Djobs", "4")


def test_unix_socket_and_db(start_server, secured, monkeypatch):
    monkeypatch.setitem(CLEAN_ENV, "SM_TEST_REDIS_PW", "adminpw")
    s = start_server([source(secured, address=f"unix:{secured.sock}", db=7,
                             password_env="SM_TEST_REDIS_PW")])
    wait_external_value(s, "c_len", "queue%3Djobs", "9")


def test_wrong_password_is_a_clear_error_without_the_password(start_server, secured,
                                                              monkeypatch):
    monkeypatch.setitem(CLEAN_ENV, "SM_TEST_REDIS_PW", "not-the-pw-xyzzy")
    s = start_server([source(secured, username="metrics", password_env="SM_TEST_REDIS_PW")])

    def stale():
        r = s.get(f"{EXTERNAL}/namespaces/default/c_len")
        return r if r.status == 503 and "WRONGPASS" in r.body.decode() else None
    r = wait_until(stale, 10, what="503 naming WRONGPASS")
    assert "xyzzy" not in r.body.decode()
    assert "xyzzy" not in s.log_text()


def test_missing_password_env_fails_each_round_clearly(start_server, secured):
    s = start_server([source(secured, password_env="SM_TEST_NOT_SET_ANYWHERE")])

    def stale():
        r = s.get(f"{EXTERNAL}/namespaces/default/c_len")
        return r if r.status == 503 and "SM_TEST_NOT_SET_ANYWHERE" in r.body.decode() else None
    wait_until(stale, 10, what="503 naming the variable")


def check(binary, tmp_path, queues=None, **extra):
    src = {"name": "jobs", "type": "redis", "address": "127.0.0.1:6379",
           "queues": queues or [{"metric": "m", "keys": ["q:*"]}]}
    src.update(extra)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(to_yaml({"server": {"auth": {"mode": "none"}}, "sources": [src]}) + "\n")
    p = subprocess.run([str(binary), "check", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=20, env=CLEAN_ENV)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("queues,extra,word", [
    ([{"preset": "resque"}], {}, "resque"),
    ([{"preset": "sidekiq", "keys": ["x"]}], {}, "keys"),
    ([{"preset": "bullmq", "window": "30s"}], {}, "derived"),
    ([{"metric": "m", "keys": ["q:*"], "window": "30s"}], {}, "derived"),
    ([{"metric": "m", "keys": ["q:*"], "derived": True, "drain_cap": 0}], {}, "drain_cap"),
    ([{"metric": "m", "keys": ["q:*"], "dequeue_counter": "done"}], {}, "derived"),
    ([{"metric": "m", "keys": ["q:*"], "derived": True, "dequeue_counter": "d:{job}"}], {},
     "{queue}"),
    ([{"metric": "m", "keys": ["q:*"], "label": "kind"}], {}, "reserved"),
    ([{"metric": "m", "keys": ["q:*"], "prefix": "x"}], {}, "prefix"),
    ([{"preset": "sidekiq"}, {"preset": "sidekiq"}], {}, "sidekiq_queue_length"),
    ([{"metric": "sidekiq_dead", "keys": ["d"]}, {"preset": "sidekiq"}], {}, "sidekiq_dead"),
    ([{"metric": "m", "keys": ["q"], "derived": True},
      {"metric": "m_drain_seconds", "keys": ["q"]}], {}, "m_drain_seconds"),
    (None, {"scan_count": 0}, "scan_count"),
    (None, {"sentinel": {"addresses": ["s:26379"], "master": "m"}}, "exclusive"),
    (None, {"sentinel": {"addresses": ["nope"], "master": "m"}, "address": None}, "nope"),
    (None, {"sentinel": {"master": "m"}, "address": None}, "addresses"),
])
def test_config_errors(binary, tmp_path, queues, extra, word):
    if extra.get("address", "") is None:
        extra = dict(extra)
        del extra["address"]
        rc, out = check_without_address(binary, tmp_path, queues, **extra)
    else:
        rc, out = check(binary, tmp_path, queues, **extra)
    assert rc != 0, out
    assert word in out, out


def check_without_address(binary, tmp_path, queues, **extra):
    src = {"name": "jobs", "type": "redis",
           "queues": queues or [{"metric": "m", "keys": ["q:*"]}]}
    src.update(extra)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(to_yaml({"server": {"auth": {"mode": "none"}}, "sources": [src]}) + "\n")
    p = subprocess.run([str(binary), "check", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=20, env=CLEAN_ENV)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("queues,extra", [
    ([{"preset": "sidekiq", "prefix": "app:", "derived": True, "window": "2m",
       "drain_cap": 600, "fallback": 0,
       "object": {"resource": "deployments.apps", "name": "sidekiq-{queue}"}},
      {"preset": "celery", "names": ["default", "reports"]},
      {"preset": "rq"}, {"preset": "bullmq", "prefix": "{bull}"}], {"scan_count": 500}),
    ([{"metric": "m", "keys": ["q:*"], "derived": True, "dequeue_counter": "done:{queue}"}],
     {}),
    (None, {"sentinel": {"addresses": ["10.0.0.1:26379", "[::1]:26379"], "master": "m"},
            "address": None}),
])
def test_config_good(binary, tmp_path, queues, extra):
    if extra.get("address", "") is None:
        extra = dict(extra)
        del extra["address"]
        rc, out = check_without_address(binary, tmp_path, queues, **extra)
    else:
        rc, out = check(binary, tmp_path, queues, **extra)
    assert rc == 0, out
