#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A demo workload for scripts/demo.sh: producers push jobs onto Redis lists (queue:NAME) at
known rates and a worker pops them at its own rates, so the backlogs move in known ways:

  queue:emails      +5/s, -3/s   grows by about 2 per second
  queue:reports     +2/s, -2/s   holds near its starting 20
  queue:thumbnails  +1/s, -6/s   drains from 200 to 0, then stays near 0

With --pg-dsn, each job is also a row in the PostgreSQL table `jobs(queue, state)`:
pushed = 'pending', popped = 'done' (for the PostgreSQL source: pending jobs per queue).
Runs until SIGTERM/SIGINT or --seconds."""

import argparse
import signal
import time

QUEUES = {  # name: (initial backlog, pushed per second, popped per second)
    "emails": (0, 5.0, 3.0),
    "reports": (20, 2.0, 2.0),
    "thumbnails": (200, 1.0, 6.0),
}
TICK = 0.1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis", default="127.0.0.1:6379", help="HOST:PORT")
    ap.add_argument("--db", type=int, default=0)
    ap.add_argument("--pg-dsn", default="", help="also record jobs in PostgreSQL")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    a = ap.parse_args()

    import redis
    host, port = a.redis.rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port), db=a.db)
    pg = None
    if a.pg_dsn:
        import psycopg2
        pg = psycopg2.connect(a.pg_dsn)
        pg.autocommit = True

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    seq = 0
    for name, (initial, _, _) in QUEUES.items():
        r.delete(f"queue:{name}")
        if initial:
            r.lpush(f"queue:{name}", *[f"{name}-{i}" for i in range(initial)])
            seq += initial
        if pg:
            with pg.cursor() as cur:
                cur.execute("INSERT INTO jobs (queue, state) SELECT %s, 'pending' "
                            "FROM generate_series(1, %s)", (name, initial))

    owed = {name: [0.0, 0.0] for name in QUEUES}  # fractional pushes, pops
    started = time.monotonic()
    next_tick = started
    while not stop and (not a.seconds or time.monotonic() - started < a.seconds):
        for name, (_, push_rate, pop_rate) in QUEUES.items():
            acc = owed[name]
            acc[0] += push_rate * TICK
            acc[1] += pop_rate * TICK
            pushes, pops = int(acc[0]), int(acc[1])
            acc[0] -= pushes
            acc[1] -= pops
            key = f"queue:{name}"
            with r.pipeline() as p:
                for _ in range(pushes):
                    seq += 1
                    p.lpush(key, f"{name}-{seq}")
                for _ in range(pops):
                    p.rpop(key)
                res = p.execute()
            popped = sum(1 for x in res[pushes:] if x is not None)
            if pg and (pushes or popped):
                with pg.cursor() as cur:
                    if pushes:
                        cur.execute("INSERT INTO jobs (queue, state) SELECT %s, 'pending' "
                                    "FROM generate_series(1, %s)", (name, pushes))
                    if popped:
                        cur.execute("UPDATE jobs SET state = 'done' WHERE id IN (SELECT id "
                                    "FROM jobs WHERE queue = %s AND state = 'pending' "
                                    "ORDER BY id LIMIT %s)", (name, popped))
        next_tick += TICK
        time.sleep(max(0.0, next_tick - time.monotonic()))
    if pg:
        pg.close()


if __name__ == "__main__":
    main()
