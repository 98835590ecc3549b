#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Diagnostic for bench/README.md, "Fairness under overload" (issue 22): patches a COPY of
src/http/server.c so that each connection, when it closes, logs one line to stderr:

  FAIR tid=<MHD thread> fd=<socket> nreq=<requests> maxgap_us=<longest wait between a
  response and the next request line> maxsvc_us=<longest request line -> completion>
  life_ms=<lifetime> h=<histogram of those gaps: <1, <5, <10, <20, <50, <100, <200, >=200 ms>

Never applied to the tree that is built for real. Usage, from the source root:

  mkdir /tmp/instr && git ls-files -z | xargs -0 -I{} cp --parents {} /tmp/instr/
  bench/fairness-instrument.py /tmp/instr/src/http/server.c
  (cd /tmp/instr && meson setup build -Dbuildtype=release && ninja -C build scalemetrics)
  SM_ONLY=1 CONNS=50 REPEAT=1 SM_BIN=/tmp/instr/build/scalemetrics SM_LOG=/tmp/sm.log \\
      bench/fairness.sh
  grep FAIR /tmp/sm.log | awk '{split($2,a,"="); split($4,b,"="); if (b[2] > 10)
      { n[a[2]]++; r[a[2]] += b[2] } } END { for (t in n) print t, n[t], r[t] }'

It matches the code of server.c as of issue 22 and fails loudly (an assertion naming the
text it looked for) once that code changes."""
import sys
p=sys.argv[1]
s=open(p).read()
def rep(a,b):
    global s
    assert s.count(a)==1, a
    s=s.replace(a,b)
rep("""	bool shut;
	struct conn *prev, *next;
};""","""	bool shut;
	struct conn *prev, *next;
	int tid;
	uint64_t nreq;
	int64_t last_done_us, req_start_us, max_gap_us, max_svc_us, opened_us;
	uint64_t gap_hist[8];
};
static int instr_bucket(int64_t us)
{
	static const int64_t lim[] = {1000, 5000, 10000, 20000, 50000, 100000, 200000};
	for (int i = 0; i < 7; i++)
		if (us < lim[i])
			return i;
	return 7;
}
#include <sys/syscall.h>
""")
rep("""		c = *socket_context;
		if (!c)
			return;
""","""		c = *socket_context;
		if (!c)
			return;
		fprintf(stderr, "FAIR tid=%d fd=%d nreq=%lu maxgap_us=%ld maxsvc_us=%ld life_ms=%ld h=%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu\\n",
		        c->tid, c->fd, (unsigned long)c->nreq, (long)c->max_gap_us, (long)c->max_svc_us,
		        (long)((sm_time_mono_us() - c->opened_us) / 1000),
		        (unsigned long)c->gap_hist[0], (unsigned long)c->gap_hist[1], (unsigned long)c->gap_hist[2], (unsigned long)c->gap_hist[3],
		        (unsigned long)c->gap_hist[4], (unsigned long)c->gap_hist[5], (unsigned long)c->gap_hist[6], (unsigned long)c->gap_hist[7]);
""")
rep("""	c->s = s;
	c->fd = info->connect_fd;""","""	c->s = s;
	c->tid = (int)syscall(SYS_gettid);
	c->opened_us = sm_time_mono_us();
	c->fd = info->connect_fd;""")
rep("""	struct request *rq;

	(void)conn;
	rq = calloc(1, sizeof(*rq));""","""	struct request *rq;

	{
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		struct conn *c = ci ? ci->socket_context : NULL;
		if (c) {
			int64_t now = sm_time_mono_us();
			if (c->last_done_us) {
				int64_t g = now - c->last_done_us;
				if (g > c->max_gap_us) c->max_gap_us = g;
				c->gap_hist[instr_bucket(g)]++;
			}
			c->req_start_us = now;
		}
	}
	rq = calloc(1, sizeof(*rq));""")
rep("""	if (!rq)
		return;
	/* The next request on this connection has connection_timeout to arrive. */""","""	if (!rq)
		return;
	{
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		struct conn *c = ci ? ci->socket_context : NULL;
		if (c) {
			int64_t now = sm_time_mono_us();
			c->last_done_us = now;
			c->nreq++;
			if (now - c->req_start_us > c->max_svc_us) c->max_svc_us = now - c->req_start_us;
		}
	}
	/* The next request on this connection has connection_timeout to arrive. */""")
open(p,'w').write(s)
