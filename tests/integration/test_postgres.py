# SPDX-License-Identifier: MIT
"""PostgreSQL and PgBouncer sources against a real PostgreSQL (initdb + pg_ctl in a temp dir)
and a real PgBouncer in front of it: connection counts by state, pool utilisation, clients
waiting in PgBouncer, SQL-defined metrics, and 503 then recovery when PostgreSQL stops."""

import shutil
import threading
import time

import pytest

from pgfixtures import PG_BIN, PgBouncer, Postgres
from smtest import EXTERNAL, assert_status, external_items, wait_until

pytestmark = pytest.mark.skipif(
    not shutil.which(f"{PG_BIN}/initdb") or not shutil.which("pgbouncer"),
    reason="PostgreSQL 15 or pgbouncer is not installed")

psycopg2 = pytest.importorskip("psycopg2")

MAX_CONNECTIONS = 20
RESERVED = 3


@pytest.fixture(scope="module")
def pg():
    p = Postgres(max_connections=MAX_CONNECTIONS, reserved=RESERVED)
    p.start()
    p.sql("CREATE DATABASE app")
    p.sql("CREATE TABLE jobs (id serial PRIMARY KEY, queue text NOT NULL, state text NOT NULL)",
          "app")
    p.sql("INSERT INTO jobs (queue, state) SELECT 'emails', 'pending' FROM generate_series(1, 7)",
          "app")
    p.sql("INSERT INTO jobs (queue, state) SELECT 'reports', 'pending' "
          "FROM generate_series(1, 3)", "app")
    p.sql("INSERT INTO jobs (queue, state) SELECT 'emails', 'done' FROM generate_series(1, 5)",
          "app")
    yield p
    p.cleanup()


@pytest.fixture(scope="module")
def bouncer(pg):
    b = PgBouncer(pg, pool_size=2)
    b.start()
    yield b
    b.stop()


def dsn_file(tmp_path, dsn, name="dsn"):
    f = tmp_path / name
    f.write_text(dsn + "\n")
    return str(f)


def pg_source(dsn_path, **extra):
    src = {"name": "app-db", "type": "postgresql", "dsn_file": dsn_path,
           "interval": "1s", "timeout": "1s", "max_age": "3s"}
    src.update(extra)
    return src


def value_of(items):
    assert len(items) == 1, items
    return items[0]["value"]


def total(items):
    return sum(int(i["value"]) for i in items)


def quietly(fn, *args):
    """Runs a statement that the test later cancels or cuts off."""
    try:
        fn(*args)
    except psycopg2.Error:
        pass


class Clients:
    """Client connections held open in known states."""

    def __init__(self):
        self.conns = []
        self.threads = []

    def open(self, dsn, state):
        c = psycopg2.connect(dsn)
        self.conns.append(c)
        if state == "idle":
            c.autocommit = True
            c.cursor().execute("SELECT 1")
        elif state == "idle_in_transaction":
            c.cursor().execute("SELECT 1")  # psycopg2 opens a transaction and leaves it
        return c

    def in_thread(self, fn):
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        self.threads.append(t)

    def close(self):
        for c in self.conns:
            try:
                c.cancel()
                c.close()
            except psycopg2.Error:
                pass


def test_builtin_connections_by_state_and_utilization(pg, start_server, tmp_path):
    clients = Clients()
    try:
        for _ in range(3):
            clients.open(pg.dsn("app"), "idle")
        for _ in range(2):
            clients.open(pg.dsn("app"), "idle_in_transaction")
        holder = clients.open(pg.dsn("app"), "lock-holder")
        holder.cursor().execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        blocked = clients.open(pg.dsn("app"), "blocked")
        clients.in_thread(lambda: quietly(blocked.cursor().execute, "SELECT count(*) FROM jobs"))

        s = start_server([pg_source(dsn_file(tmp_path, pg.dsn("postgres")))])

        def app(state):
            return total(external_items(
                s, "postgresql_connections", f"database%3Dapp%2Cstate%3D{state}"))

        wait_until(lambda: app("waiting") == 1, 5, what="one connection waiting on a lock")
        assert app("idle") == 3
        # The lock holder is idle in a transaction too.
        assert app("idle_in_transaction") == 3
        assert app("active") == 0

        items = external_items(s, "postgresql_connections")
        for it in items:
            assert set(it["metricLabels"]) == {"database", "state", "user"}, it
        # The collector's own connection (database postgres) is counted and active.
        own = total(external_items(s, "postgresql_connections",
                                   "database%3Dpostgres%2Cstate%3Dactive"))
        assert own >= 1
        assert value_of(external_items(s, "postgresql_connections_max")) == str(
            MAX_CONNECTIONS - RESERVED)
        # Utilisation is the served total over the usable slots, as a Quantity.
        all_conns = total(items)
        util = value_of(external_items(s, "postgresql_connection_utilization"))
        expected = all_conns / (MAX_CONNECTIONS - RESERVED)
        assert abs(parse_quantity(util) - expected) < 1e-6, (util, expected)
        age = parse_quantity(value_of(external_items(s, "postgresql_oldest_transaction_seconds")))
        assert age >= 0
        # A primary has no replication lag series.
        assert external_items(s, "postgresql_replication_lag_seconds") == []
    finally:
        clients.close()


def test_sql_defined_metrics_and_bad_query(pg, start_server, tmp_path):
    src = pg_source(dsn_file(tmp_path, pg.dsn("app")), builtin=False, queries=[
        {"metric": "pending_jobs", "sql": "SELECT count(*) FROM jobs WHERE state = 'pending'"},
        {"metric": "jobs_by_queue",
         "sql": "SELECT queue, count(*) FROM jobs WHERE state = 'pending' GROUP BY queue"},
        {"metric": "broken_query", "sql": "SELECT count(*) FROM no_such_table"},
        {"metric": "text_value", "sql": "SELECT 'abc'"},
        {"metric": "null_value", "sql": "SELECT NULL::int"},
        {"metric": "no_rows", "sql": "SELECT 1 WHERE false"},
        {"metric": "write_attempt", "sql": "DELETE FROM jobs RETURNING 1"},
        {"metric": "broken_with_fallback", "sql": "SELECT count(*) FROM no_such_table",
         "fallback": 3},
        {"metric": "by_queue_one_null",
         "sql": "SELECT * FROM (VALUES ('a', 1), ('b', NULL::int)) AS t(queue, n)"},
    ])
    s = start_server([src])
    assert wait_until(lambda: external_items(s, "pending_jobs"), 5, what="pending_jobs")
    assert value_of(external_items(s, "pending_jobs")) == "10"
    by_queue = {i["metricLabels"]["queue"]: i["value"]
                for i in external_items(s, "jobs_by_queue")}
    assert by_queue == {"emails": "7", "reports": "3"}
    # A query that could not be read is a 503 naming the metric, the source and the error
    # (docs/configuration.md "Empty queues and failed series"), not an empty list.
    for m, why in (("broken_query", "no_such_table"), ("text_value", "non-numeric"),
                   ("null_value", "NULL"), ("write_attempt", "read-only transaction")):
        doc = assert_status(s.get(f"{EXTERNAL}/namespaces/default/{m}"), 503,
                            "ServiceUnavailable")
        assert f"metric '{m}'" in doc["message"] and "'app-db'" in doc["message"], doc
        assert why in doc["message"], doc
    assert value_of(external_items(s, "broken_with_fallback")) == "3"
    # No rows is no series: an empty list.
    assert external_items(s, "no_rows") == []
    # One bad row: the rows read are served, the bad one named is a 503.
    assert {i["metricLabels"]["queue"]: i["value"]
            for i in external_items(s, "by_queue_one_null")} == {"a": "1"}
    assert value_of(external_items(s, "by_queue_one_null", "queue%3Da")) == "1"
    assert_status(s.get(f"{EXTERNAL}/namespaces/default/by_queue_one_null"
                        "?labelSelector=queue%3Db"), 503, "ServiceUnavailable")
    # The read-only transaction refused the DELETE: nothing was deleted.
    assert pg.sql("SELECT count(*) FROM jobs", "app")[0][0] == 15
    log = s.log_text()
    assert "no_such_table" in log
    assert "returned no rows" in log
    assert "NULL" in log
    assert "non-numeric" in log
    assert "read-only transaction" in log
    # A new pending job shows up in the next round.
    pg.sql("INSERT INTO jobs (queue, state) VALUES ('emails', 'pending')", "app")
    wait_until(lambda: value_of(external_items(s, "pending_jobs")) == "11", 5,
               what="pending_jobs == 11")
    pg.sql("DELETE FROM jobs WHERE id = (SELECT max(id) FROM jobs)", "app")


def test_pgbouncer_pools_waiting_clients(pg, bouncer, start_server, tmp_path):
    clients = Clients()
    try:
        # Session pooling, pool_size 2: two clients hold the two servers, a third waits.
        for _ in range(2):
            clients.open(bouncer.dsn(), "idle_in_transaction")
        third = psycopg2.connect(bouncer.dsn())
        clients.conns.append(third)
        clients.in_thread(lambda: quietly(third.cursor().execute, "SELECT 1"))

        s = start_server([{"name": "bouncer", "type": "pgbouncer",
                           "dsn_file": dsn_file(tmp_path, bouncer.admin_dsn()),
                           "interval": "1s", "timeout": "1s", "max_age": "3s"}])
        sel = "database%3Dapp"
        wait_until(lambda: external_items(s, "pgbouncer_clients_waiting", sel) and value_of(
            external_items(s, "pgbouncer_clients_waiting", sel)) == "1", 5,
            what="one client waiting in pgbouncer")
        assert value_of(external_items(s, "pgbouncer_clients_active", sel)) == "2"
        assert value_of(external_items(s, "pgbouncer_servers_active", sel)) == "2"
        assert value_of(external_items(s, "pgbouncer_pool_size", sel)) == "2"
        assert value_of(external_items(s, "pgbouncer_pool_utilization", sel)) == "1"
        wait = parse_quantity(value_of(external_items(s, "pgbouncer_max_wait_seconds", sel)))
        assert wait > 0
        labels = external_items(s, "pgbouncer_clients_waiting", sel)[0]["metricLabels"]
        assert labels == {"database": "app", "user": "postgres"}
        # The admin console's own pseudo-pool is not served.
        assert external_items(s, "pgbouncer_clients_active", "database%3Dpgbouncer") == []
        # Release one server: the waiting client gets it, utilisation stays at 1, nobody waits.
        clients.conns[0].rollback()
        clients.conns[0].close()
        wait_until(lambda: value_of(external_items(s, "pgbouncer_clients_waiting", sel)) == "0",
                   5, what="no client waiting")
        # Session pooling keeps a server per connected client: when the second client leaves,
        # one of two servers is in use.
        clients.conns[1].rollback()
        clients.conns[1].close()
        wait_until(lambda: value_of(
            external_items(s, "pgbouncer_pool_utilization", sel)) == "500m",
            5, what="utilisation 500m")
    finally:
        clients.close()


def test_postgres_stop_gives_503_then_recovers(pg, start_server, tmp_path):
    s = start_server([pg_source(dsn_file(tmp_path, pg.dsn("app")), builtin=False, queries=[
        {"metric": "pending_jobs", "sql": "SELECT count(*) FROM jobs WHERE state = 'pending'"},
    ])])
    wait_until(lambda: external_items(s, "pending_jobs"), 5, what="pending_jobs")
    pg.stop()
    try:
        def stale():
            r = s.get(f"{EXTERNAL}/namespaces/default/pending_jobs")
            return r if r.status == 503 else None
        r = wait_until(stale, 10, what="503 once max_age passes")
        doc = assert_status(r, 503, "ServiceUnavailable")
        assert "app-db" in doc["message"], doc
        assert s.get("/healthz").status == 200
    finally:
        pg.start()
    wait_until(lambda: s.get(f"{EXTERNAL}/namespaces/default/pending_jobs").status == 200, 20,
               what="fresh values after PostgreSQL restarted")
    assert value_of(external_items(s, "pending_jobs")) == "10"


def test_check_rejects_inline_dsn_and_missing_dsn(start_server, tmp_path, binary):
    import subprocess
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sources:\n"
                   "  - name: db\n"
                   "    type: postgresql\n"
                   "    dsn: \"postgres://u:secret@h/db\"\n"
                   "  - name: bouncer\n"
                   "    type: pgbouncer\n")
    r = subprocess.run([str(binary), "check", "--config", str(cfg)], capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert "u:secret@" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(str(cfg))]
    assert any(":4:5:" in ln and "dsn" in ln for ln in lines), r.stderr
    assert any("dsn_env or dsn_file" in ln for ln in lines), r.stderr


SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def parse_quantity(q):
    num = q.rstrip("numkMG")
    return float(num) * SUFFIX[q[len(num):]]
