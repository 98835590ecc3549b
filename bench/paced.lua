-- SPDX-License-Identifier: MIT
-- Paced load, the way HPA controllers ask: every connection sends one request, then waits
-- about PACE_MS milliseconds (uniformly 0.5x to 1.5x, so connections do not march in step)
-- before the next, and every request asks a different URL (as in distinct.lua: nothing is
-- ever answered from scalemetrics' answer cache). 50 connections at PACE_MS=10 offer about
-- 5,000 requests/s, against which latency is service time, not the queue behind a
-- saturated server (wrk's latency runs from the request's first byte to the answer's last).
-- Used by bench/serve.sh's "paced" mode.
dofile(os.getenv("BENCH_DIR") .. "/distinct.lua")

local pace = tonumber(os.getenv("PACE_MS") or "10")

function delay()
	return math.floor(pace * (0.5 + math.random()) + 0.5)
end
