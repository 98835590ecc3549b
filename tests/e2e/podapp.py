# SPDX-License-Identifier: MIT
"""What a backend pod serves on /metrics, for the Pods-metric scenarios: one small HTTP server
per pod IP (127.0.0.x, so that each pod the Kubernetes API lists has an address of its own).

The request counter and the latency histogram advance with the wall clock at the rate the test
sets (`set_rate(req_per_s)`, `set_latency(seconds)`), so the rate and quantile that
scalemetrics computes from its scrapes are known in advance; the scraping, the windows and the
maths are scalemetrics' own."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class PodApp:
    def __init__(self, ip, port):
        self.ip = ip
        self.port = port
        self.lock = threading.Lock()
        self.rate = 0.0
        self.latency = 0.01
        self.latency_obs_per_s = 20.0
        self.t = time.monotonic()
        self.requests = 0.0
        self.buckets = [0.0] * len(BUCKETS)
        self.count = 0.0
        self.sum = 0.0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = app.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((ip, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _advance(self):
        now = time.monotonic()
        dt = now - self.t
        self.t = now
        self.requests += self.rate * dt
        n = self.latency_obs_per_s * dt
        for i, le in enumerate(BUCKETS):
            if self.latency <= le:
                self.buckets[i] += n
        self.count += n
        self.sum += n * self.latency

    def set_rate(self, rate):
        with self.lock:
            self._advance()
            self.rate = rate

    def set_latency(self, seconds):
        with self.lock:
            self._advance()
            self.latency = seconds

    def exposition(self):
        with self.lock:
            self._advance()
            lines = ["# TYPE http_requests_total counter",
                     f"http_requests_total {int(self.requests)}",
                     "# TYPE http_request_duration_seconds histogram"]
            for le, v in zip(BUCKETS, self.buckets):
                lines.append(f'http_request_duration_seconds_bucket{{le="{le}"}} {int(v)}')
            lines += [f'http_request_duration_seconds_bucket{{le="+Inf"}} {int(self.count)}',
                      f"http_request_duration_seconds_sum {self.sum:.3f}",
                      f"http_request_duration_seconds_count {int(self.count)}"]
            return "\n".join(lines) + "\n"
