# SPDX-License-Identifier: MIT
"""Two PgBouncers for two teams, each source serving the built-in pgbouncer_* names in its own
namespace: each namespace answers from its own PgBouncer, discovery lists each name once, and
a config whose sources serve a name in a common namespace is refused naming both sources."""

import re
import shutil
import subprocess

import pytest

from pgfixtures import PG_BIN, PgBouncer, Postgres
from smtest import CUSTOM_V2, EXTERNAL, assert_status, external_items, to_yaml, wait_until

pytestmark = pytest.mark.skipif(
    not shutil.which(f"{PG_BIN}/initdb") or not shutil.which("pgbouncer"),
    reason="PostgreSQL 15 or pgbouncer is not installed")

psycopg2 = pytest.importorskip("psycopg2")


@pytest.fixture(scope="module")
def bouncers():
    """One PostgreSQL, two PgBouncers in front of it with different pool sizes (2 and 5)."""
    pg = Postgres()
    pg.start()
    started = []
    try:
        pg.sql("CREATE DATABASE app")
        for name, size in (("bouncer-a", 2), ("bouncer-b", 5)):
            b = PgBouncer(pg, pool_size=size, name=name)
            b.start()
            started.append(b)
        yield started
    finally:
        for b in started:
            b.stop()
        pg.cleanup()


def bouncer_source(tmp_path, name, bouncer, namespaces):
    dsn = tmp_path / f"{name}.dsn"
    dsn.write_text(bouncer.admin_dsn() + "\n")
    return {"name": name, "type": "pgbouncer", "dsn_file": str(dsn), "namespaces": namespaces,
            "interval": "1s", "timeout": "1s", "max_age": "3s"}


def connect(bouncer, n):
    """n clients of database app through bouncer, each holding a server (session pooling)."""
    conns = []
    for _ in range(n):
        c = psycopg2.connect(bouncer.dsn())
        c.autocommit = True
        c.cursor().execute("SELECT 1")
        conns.append(c)
    return conns


def value(server, metric, namespace):
    items = external_items(server, metric, "database%3Dapp", namespace=namespace)
    return items[0]["value"] if len(items) == 1 else None


def test_two_pgbouncers_two_teams(bouncers, start_server, tmp_path):
    a, b = bouncers
    conns = connect(a, 1) + connect(b, 3)
    try:
        s = start_server([bouncer_source(tmp_path, "bouncer-a", a, ["team-a"]),
                          bouncer_source(tmp_path, "bouncer-b", b, ["team-b"])])
        wait_until(lambda: value(s, "pgbouncer_clients_active", "team-a") == "1" and
                   value(s, "pgbouncer_clients_active", "team-b") == "3", 10,
                   what="both PgBouncers read")
        # Each namespace answers from its own PgBouncer.
        assert value(s, "pgbouncer_pool_size", "team-a") == "2"
        assert value(s, "pgbouncer_pool_size", "team-b") == "5"
        assert value(s, "pgbouncer_servers_active", "team-a") == "1"
        assert value(s, "pgbouncer_servers_active", "team-b") == "3"
        assert value(s, "pgbouncer_pool_utilization", "team-a") == "500m"
        assert value(s, "pgbouncer_pool_utilization", "team-b") == "600m"
        total = s.json(f"{CUSTOM_V2}/namespaces/team-b/metrics/pgbouncer_clients_active")
        assert [i["value"] for i in total["items"]] == ["3"], total
        # Where neither serves it: unknown, as with one source.
        assert_status(s.get(f"{EXTERNAL}/namespaces/default/pgbouncer_pool_size"), 404,
                      "NotFound")
        # Discovery lists each shared name once.
        names = [r["name"] for r in s.json(EXTERNAL)["resources"]]
        assert names.count("pgbouncer_pool_size") == 1, names
        assert len(names) == len(set(names)) == 8, names
        names = [r["name"] for r in s.json(CUSTOM_V2)["resources"]]
        assert names.count("namespaces/pgbouncer_pool_size") == 1, names
        # One team's PgBouncer failing leaves the other team's answers alone.
        b.stop()
        try:
            def stale():
                r = s.get(f"{EXTERNAL}/namespaces/team-b/pgbouncer_pool_size")
                return r if r.status == 503 else None
            doc = assert_status(wait_until(stale, 10, what="team-b stale"), 503,
                                "ServiceUnavailable")
            assert "'bouncer-b'" in doc["message"], doc
            assert value(s, "pgbouncer_pool_size", "team-a") == "2"
        finally:
            b.start()
    finally:
        for c in conns:
            c.close()


def test_check_refuses_a_name_served_twice_in_one_namespace(tmp_path, binary, bouncers):
    a, b = bouncers
    ok = tmp_path / "ok.yaml"
    ok.write_text(to_yaml({"sources": [
        bouncer_source(tmp_path, "bouncer-a", a, ["team-a"]),
        bouncer_source(tmp_path, "bouncer-b", b, ["team-b", "team-c"])]}))
    r = subprocess.run([str(binary), "check", "--config", str(ok)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "config OK: 2 sources" in r.stdout, r.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(to_yaml({"sources": [
        bouncer_source(tmp_path, "bouncer-a", a, ["team-a"]),
        bouncer_source(tmp_path, "bouncer-b", b, ["team-b", "team-a"])]}))
    second = next(i for i, ln in enumerate(bad.read_text().splitlines(), 1)
                  if "bouncer-b" in ln)
    for cmd in ("check", "serve"):
        r = subprocess.run([str(binary), cmd, "--config", str(bad)], capture_output=True,
                           text=True, timeout=20)
        assert r.returncode != 0, (cmd, r.stdout, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith(f"{bad}:")]
        # One line per built-in name, at the second source, naming both and the namespace.
        pattern = (rf"{re.escape(str(bad))}:{second}:\d+: metric 'pgbouncer_[a-z_]+' of "
                   r"source 'bouncer-b' is also served by source 'bouncer-a' in namespace "
                   r"'team-a'$")
        assert len(lines) == 8 and all(re.match(pattern, ln) for ln in lines), r.stderr
