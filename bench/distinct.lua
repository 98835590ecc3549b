-- SPDX-License-Identifier: MIT
-- Every request asks a different URL (the query string gets "n=<thread>-<count>"), like a
-- fleet of HPAs each asking its own question once per sync: scalemetrics' answer cache never
-- hits, so every answer is looked up and encoded anew. nginx ignores the query string and
-- serves the same bytes. Used by bench/serve.sh's "distinct" mode.
local threads = 0

function setup(thread)
	threads = threads + 1
	thread:set("tid", threads)
end

local n = 0

function request()
	n = n + 1
	local sep = string.find(wrk.path, "?", 1, true) and "&" or "?"
	return wrk.format(nil, wrk.path .. sep .. "n=" .. tostring(tid) .. "-" .. tostring(n))
end
