# SPDX-License-Identifier: MIT
"""A real PostgreSQL (initdb + pg_ctl into a temp dir) and a real PgBouncer in front of it,
both on loopback, both run as the unprivileged `postgres` user (neither runs as root)."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args, **kw):
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def _wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Postgres:
    """initdb into a temp dir; start()/stop() may be called repeatedly (same port)."""

    def __init__(self, max_connections=20, reserved=3):
        self.dir = tempfile.mkdtemp(prefix="sm-pg-")
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.max_connections = max_connections
        self.reserved = reserved
        _as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-sync"])

    def start(self):
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                f"-c max_connections={self.max_connections} "
                f"-c superuser_reserved_connections={self.reserved} -c fsync=off")
        _as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-o", opts, "-l",
                      os.path.join(self.dir, "log"), "-w", "start"])
        _wait_port(self.port)

    def stop(self, mode="fast"):
        _as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"])

    def dsn(self, dbname="postgres", user="postgres"):
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def sql(self, statement, dbname="postgres"):
        import psycopg2
        conn = psycopg2.connect(self.dsn(dbname))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def cleanup(self):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PgBouncer:
    """PgBouncer in session mode in front of `pg`, database `app` with a small pool. Several may
    run in front of one `pg` when each has its own `name` (it names their files in pg's dir)."""

    def __init__(self, pg, pool_size=2, name="pgbouncer"):
        self.pg = pg
        self.dir = pg.dir
        self.name = name
        self.port = _free_port()
        self.ini = os.path.join(self.dir, f"{name}.ini")
        users = self.userlist = os.path.join(self.dir, f"{name}-userlist.txt")
        with open(users, "w") as f:
            f.write('"postgres" ""\n')
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
app = host=127.0.0.1 port={pg.port} dbname=app pool_size={pool_size}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
admin_users = postgres
pool_mode = session
max_client_conn = 100
default_pool_size = {pool_size}
logfile = {self.dir}/{name}.log
pidfile = {self.dir}/{name}.pid
""")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (users, self.ini):
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def start(self):
        _as_postgres(["pgbouncer", "-d", self.ini])
        _wait_port(self.port)

    def stop(self):
        pidfile = os.path.join(self.dir, f"{self.name}.pid")
        try:
            with open(pidfile) as f:
                os.kill(int(f.read().strip()), 15)
        except (OSError, ValueError):
            return
        deadline = time.time() + 10
        while os.path.exists(pidfile) and time.time() < deadline:
            time.sleep(0.05)

    def admin_dsn(self):
        return f"host=127.0.0.1 port={self.port} dbname=pgbouncer user=postgres"

    def dsn(self, dbname="app"):
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user=postgres"
