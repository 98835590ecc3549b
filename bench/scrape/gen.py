#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the benchmark's exposition (200 series, as python-prometheus-client formats them),
nginx config (N listeners on loopback) and scalemetrics config. Usage: gen.py DIR N BASEPORT"""
import sys
from pathlib import Path

d, n, base = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
d.mkdir(parents=True, exist_ok=True)
lines = ["# HELP http_requests_total Requests served.", "# TYPE http_requests_total counter"]
for i in range(100):  # 100 counter series
    code = ["200", "201", "404", "500"][i % 4]
    lines.append(f'http_requests_total{{code="{code}",method="get",path="/api/v1/item/{i}"}} '
                 f'{1000 + 37 * i}.0')
lines += ["# HELP http_request_duration_seconds Latency.",
          "# TYPE http_request_duration_seconds histogram"]
bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0"]
for h in range(10):  # 10 x (8 buckets + +Inf) = 90, plus _sum/_count = 110... keep 100:
    for j, le in enumerate(bounds):
        lines.append(f'http_request_duration_seconds_bucket{{le="{le}",path="/p{h}"}} '
                     f'{10 * (j + 1) + h}.0')
    lines.append(f'http_request_duration_seconds_bucket{{le="+Inf",path="/p{h}"}} {100 + h}.0')
    lines.append(f'http_request_duration_seconds_count{{path="/p{h}"}} {100 + h}.0')
assert len([x for x in lines if not x.startswith("#")]) == 200
(d / "www").mkdir(exist_ok=True)
(d / "www" / "metrics").write_text("\n".join(lines) + "\n")

listens = "\n".join(f"    listen 127.0.0.1:{base + i};" for i in range(n))
(d / "nginx.conf").write_text(f"""worker_processes 1;
worker_rlimit_nofile 8192;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000;
  default_type text/plain;
  gzip on; gzip_types text/plain; gzip_min_length 256;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{
{listens}
    root {d}/www;
  }}
}}
""")
targets = "\n".join(f'      - "http://127.0.0.1:{base + i}/metrics"' for i in range(n))
(d / "config.yaml").write_text(f"""server:
  listen: "127.0.0.1:1"
sources:
  - name: bench
    type: scrape
    interval: 1s
    timeout: 5s
    max_series: 100000
    targets:
{targets}
    rates:
      - metric: http_requests_per_second
        counter: http_requests_total
        window: 10s
        by: [code]
    quantiles:
      - metric: http_request_duration_p95_seconds
        histogram: http_request_duration_seconds
        quantile: 0.95
        window: 10s
""")
