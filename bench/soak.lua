-- SPDX-License-Identifier: MIT
-- Mixed load for bench/soak.sh. Run with as many threads as connections (-t N -c N), so each
-- thread's Lua state has one connection and knows which path each response belongs to.
-- SOAK_PATHS: paths separated by '|'; SOAK_DELAY_MS: pause before each request;
-- SOAK_OUT: file that gets one line per (second, status, path index) bucket that was not 200.
local paths = {}
for p in string.gmatch(os.getenv("SOAK_PATHS") or "/healthz", "[^|]+") do
	paths[#paths + 1] = p
end
local delay_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "0")
local threads = {}

function setup(thread)
	threads[#threads + 1] = thread
end

local n = 0
local cur = 1
buckets = {}
oks = 0
bad = 0

function request()
	n = n + 1
	cur = (n % #paths) + 1
	return wrk.format("GET", paths[cur])
end

function delay()
	return delay_ms
end

function response(status, headers, body)
	if status == 200 then
		oks = oks + 1
	else
		bad = bad + 1
		local k = os.time() .. " " .. status .. " " .. cur
		buckets[k] = (buckets[k] or 0) + 1
	end
end

function done(summary, latency, requests)
	local f = io.open(os.getenv("SOAK_OUT"), "w")
	local ok_total, bad_total = 0, 0
	for _, t in ipairs(threads) do
		ok_total = ok_total + t:get("oks")
		bad_total = bad_total + t:get("bad")
		for k, v in pairs(t:get("buckets")) do
			f:write(k .. " " .. v .. "\n")
		end
	end
	f:write("# total 200: " .. ok_total .. " non-200: " .. bad_total .. "\n")
	f:close()
end
