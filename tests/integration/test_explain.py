# SPDX-License-Identifier: MIT
"""`scalemetrics explain`: against a running server and a real Redis whose queue lengths are
known, the printed requests, values and replica proposals equal the ones computed by hand
with the HPA algorithm (docs/api.md "How the HPA uses the answers")."""

import re
import subprocess

import pytest

from smtest import CLEAN_ENV, SLOW, free_port, redis_source, wait_external_value

# Each queue is also served as a custom metric on a Deployment (Object metrics) and, under
# another name, on a pod named after the queue (Pods metrics: no scraping needed).
QUEUES = [{"metric": "redis_queue_length", "keys": ["queue:*"],
           "object": {"resource": "deployments.apps", "name": "worker-{queue}"}},
          {"metric": "backlog_per_pod", "keys": ["queue:*"],
           "object": {"resource": "pods", "name": "{queue}"}}]


@pytest.fixture(scope="module")
def srv(module_server_factory, redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.delete("queue:emails", "queue:sms")
    r.rpush("queue:emails", *[f"job-{i}" for i in range(37)])
    r.rpush("queue:sms", *[f"sms-{i}" for i in range(5)])
    dead = {"name": "dead", "type": "redis", "address": f"127.0.0.1:{free_port()}",
            "interval": "1s", "timeout": "300ms",
            "queues": [{"metric": "dead_queue_length", "keys": ["queue:*"]}]}
    s = module_server_factory([redis_source(redis_server, redis_db, queues=QUEUES), dead])
    wait_external_value(s, "redis_queue_length", "queue%3Demails", "37")
    wait_external_value(s, "redis_queue_length", "queue%3Dsms", "5")
    return s


def explain(srv, hpa_text, *args, stdin=False, tmp_path=None, tls=None):
    """Runs explain with the HPA from a file (or stdin); returns CompletedProcess."""
    tls = tls if tls is not None else ["--ca-file", str(srv.certs["ca"])]
    cmd = [str(srv.binary), "explain", "--server", f"https://127.0.0.1:{srv.port}", *tls]
    if stdin:
        cmd += ["--hpa", "-"]
    else:
        path = tmp_path / "hpa.yaml"
        path.write_text(hpa_text)
        cmd += ["--hpa", str(path)]
    cmd += list(args)
    return subprocess.run(cmd, input=hpa_text if stdin else None, capture_output=True,
                          text=True, timeout=30 * SLOW, env=CLEAN_ENV)


def hpa(metrics, current=None, min_replicas=1, max_replicas=20, extra=""):
    status = f"status:\n  currentReplicas: {current}\n  desiredReplicas: {current}\n" \
        if current is not None else ""
    return f"""apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: email-worker
  namespace: default
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: email-worker
  minReplicas: {min_replicas}
  maxReplicas: {max_replicas}
  metrics:
{metrics}{extra}
{status}"""


EXTERNAL_AVG_10 = """\
    - type: External
      external:
        metric:
          name: redis_queue_length
          selector:
            matchLabels:
              queue: emails
        target:
          type: AverageValue
          averageValue: "10"
"""

EXTERNAL_VALUE_20_BOTH = """\
    - type: External
      external:
        metric:
          name: redis_queue_length
          selector:
            matchExpressions:
              - key: queue
                operator: In
                values: [sms, emails]
        target:
          type: Value
          value: "20"
"""

OBJECT_VALUE_30 = """\
    - type: Object
      object:
        describedObject:
          apiVersion: apps/v1
          kind: Deployment
          name: worker-emails
        metric:
          name: redis_queue_length
        target:
          type: Value
          value: "30"
"""


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p.stdout


def desired(out):
    m = re.search(r"^  desired replicas: (\d+)", out, re.M)
    assert m, out
    return int(m.group(1))


def test_external_average_value(srv, tmp_path):
    # 37 jobs, 10 per replica, 3 replicas now: ratio 37 / 30 = 1.233 > 1.1 -> ceil(3.7) = 4.
    out = ok(explain(srv, hpa(EXTERNAL_AVG_10, current=3), tmp_path=tmp_path))
    assert ("GET /apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length"
            "?labelSelector=queue%3Demails") in out, out
    assert 'redis_queue_length{queue="emails"} = 37' in out, out
    assert "the sum of the 1 item = 37000m (37)" in out, out
    assert "ratio: 37000m / (10000m x 3 current replicas) = 1.2333" in out, out
    assert "proposal: ceil(37000m / 10000m) = 4 replicas" in out, out
    assert "current replicas 3 (from status.currentReplicas)" in out, out
    assert desired(out) == 4
    assert "scale up from 3" in out, out


def test_kubectl_output_from_stdin(srv):
    # What `kubectl get hpa email-worker -o yaml` prints: server fields, annotations,
    # conditions, and status.currentReplicas 2. Sum 37 + 5 = 42 against value 20: ratio 2.1,
    # ceil(2.1 x 2) = 5, but without behavior the HPA goes to at most max(2 x 2, 4) = 4.
    text = hpa(EXTERNAL_VALUE_20_BOTH, current=2).replace(
        "  namespace: default\n",
        "  namespace: default\n  resourceVersion: \"1234\"\n"
        "  uid: 0b6c4b6e-8d3a-4d1e-9d7e-1c1b8e3f0a11\n"
        "  creationTimestamp: \"2024-05-01T12:00:00Z\"\n"
        "  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n"
        "      {\"apiVersion\":\"autoscaling/v2\"}\n")
    text += """  conditions:
  - type: AbleToScale
    status: "True"
    reason: ReadyForNewScale
  currentMetrics:
  - type: External
    external:
      metric: {name: redis_queue_length}
      current: {value: "42"}
"""
    out = ok(explain(srv, text, stdin=True))
    assert "labelSelector=queue+in+%28emails%2Csms%29" in out, out
    assert "the sum of the 2 items = 42000m (42)" in out, out
    assert "ratio: 42000m / 20000m = 2.1000" in out, out
    assert "proposal: ceil(2.1000 x 2 ready pods) = 5 replicas" in out, out
    assert "max(2 x 2, 4) = 4" in out, out
    assert desired(out) == 4


def test_object_value(srv, tmp_path):
    # One object, value 37 against 30 on 3 replicas: ratio 1.233 -> ceil(3.7) = 4.
    out = ok(explain(srv, hpa(OBJECT_VALUE_30), "--current-replicas", "3", tmp_path=tmp_path))
    assert ("GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/"
            "worker-emails/redis_queue_length") in out, out
    assert "ratio: 37000m / 30000m = 1.2333" in out, out
    assert "proposal: ceil(1.2333 x 3 ready pods) = 4 replicas" in out, out
    assert "(from --current-replicas)" in out, out
    assert desired(out) == 4


def test_within_tolerance_keeps_the_count(srv, tmp_path):
    # 37 / (12 x 3) = 1.028: within 0.1 of 1, no change.
    metric = EXTERNAL_AVG_10.replace('averageValue: "10"', 'averageValue: "12"')
    out = ok(explain(srv, hpa(metric, current=3), tmp_path=tmp_path))
    assert "= 1.0278, within the tolerance" in out, out
    assert "proposal: 3 replicas (the current count)" in out, out
    assert desired(out) == 3
    assert "no change" in out, out


def test_largest_proposal_wins_and_scales_down(srv, tmp_path):
    # 5 replicas. Metric 1: 37 / (10 x 5) = 0.74 -> ceil(3.7) = 4.
    # Metric 2: sms only, 5 against value 20: 0.25 -> ceil(0.25 x 5) = 2. Largest: 4.
    sms = EXTERNAL_VALUE_20_BOTH.replace("values: [sms, emails]", "values: [sms]")
    out = ok(explain(srv, hpa(EXTERNAL_AVG_10 + sms, current=5), tmp_path=tmp_path))
    assert "proposal: ceil(37000m / 10000m) = 4 replicas" in out, out
    assert "proposal: ceil(0.2500 x 5 ready pods) = 2 replicas" in out, out
    assert "largest proposal: 4 replicas (metric 1" in out, out
    assert desired(out) == 4
    assert "scale down from 5" in out, out


def test_max_replicas_clamp(srv, tmp_path):
    # 37 / 5 per replica = 8 wanted, maxReplicas 3.
    metric = EXTERNAL_AVG_10.replace('averageValue: "10"', 'averageValue: "5"')
    out = ok(explain(srv, hpa(metric, current=3, max_replicas=3), tmp_path=tmp_path))
    assert "proposal: ceil(37000m / 5000m) = 8 replicas" in out, out
    assert "lowered to maxReplicas 3" in out, out
    assert desired(out) == 3


def test_insecure(srv, tmp_path):
    out = ok(explain(srv, hpa(EXTERNAL_AVG_10, current=3), tls=["--insecure"],
                     tmp_path=tmp_path))
    assert desired(out) == 4


def test_unverified_certificate_fails(srv, tmp_path):
    p = explain(srv, hpa(EXTERNAL_AVG_10, current=3), tls=[], tmp_path=tmp_path)
    assert p.returncode == 1, p
    assert "FAILED:" in p.stdout and "certificate" in p.stdout.lower(), p.stdout


def test_unknown_metric_prints_the_status_message(srv, tmp_path):
    metric = EXTERNAL_AVG_10.replace("name: redis_queue_length", "name: no_such_metric")
    p = explain(srv, hpa(metric, current=3), tmp_path=tmp_path)
    assert p.returncode == 1, p
    assert "FAILED: HTTP 404 NotFound:" in p.stdout, p.stdout
    assert "no metric could be computed" in p.stdout, p.stdout
    assert desired(p.stdout) == 3


def test_stale_source_prints_the_redis_error(srv, tmp_path):
    # The failing metric blocks a scale-down but the working one still decides a scale-up.
    dead = """\
    - type: External
      external:
        metric:
          name: dead_queue_length
        target:
          type: AverageValue
          averageValue: "5"
"""
    p = explain(srv, hpa(EXTERNAL_AVG_10 + dead, current=3), tmp_path=tmp_path)
    assert p.returncode == 1, p
    assert "FAILED: HTTP 503 ServiceUnavailable:" in p.stdout, p.stdout
    assert "Connection refused" in p.stdout, p.stdout
    assert desired(p.stdout) == 4

    p = explain(srv, hpa(EXTERNAL_AVG_10 + dead, current=6), tmp_path=tmp_path)
    assert p.returncode == 1, p
    assert "a metric failed and the others would scale down" in p.stdout, p.stdout
    assert desired(p.stdout) == 6


PODS_AVG_10 = """\
    - type: Pods
      pods:
        metric:
          name: backlog_per_pod
        target:
          type: AverageValue
          averageValue: "10"
"""


def test_pods_average_value(srv, tmp_path):
    # Pods 'emails' (37) and 'sms' (5): integer average 21000m against 10 -> ratio 2.1,
    # ceil(2.1 x 2 pods) = 5, limited to max(2 x 2, 4) = 4.
    out = ok(explain(srv, hpa(PODS_AVG_10, current=2), tmp_path=tmp_path))
    assert ("GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/"
            "backlog_per_pod\n") in out, out
    assert "Pod/emails backlog_per_pod = 37" in out, out
    assert "the average of the 2 pod values (integer milli division) = 21000m (21)" in out, out
    assert "proposal: ceil(2.1000 x 2 pods) = 5 replicas" in out, out
    assert desired(out) == 4


def test_pods_missing_pods(srv, tmp_path):
    # 4 replicas, 2 report: on a scale-up the other 2 count as 0, so the average over 4 pods
    # is 10500m, ratio 1.05: within the tolerance, the count stays.
    out = ok(explain(srv, hpa(PODS_AVG_10, current=4), tmp_path=tmp_path))
    assert "2 of the 4 current replicas reported no value" in out, out
    assert "recomputed over 4 pods: average 10500m (10.5), ratio 1.0500, within" in out, out
    assert desired(out) == 4


def test_pods_metric_uses_the_pod_selector(srv, tmp_path):
    pods = """\
    - type: Pods
      pods:
        metric:
          name: redis_queue_length
        target:
          type: AverageValue
          averageValue: 500m
"""
    p = explain(srv, hpa(pods, current=3), "--pod-selector", "app=email-worker,tier in (b,a)",
                tmp_path=tmp_path)
    assert ("GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/"
            "redis_queue_length?labelSelector=app%3Demail-worker%2Ctier+in+%28a%2Cb%29") \
        in p.stdout, p.stdout
    p = explain(srv, hpa(pods, current=3), tmp_path=tmp_path)
    assert "without --pod-selector" in p.stdout, p.stdout
    assert "/pods/%2A/redis_queue_length\n" in p.stdout, p.stdout


def test_resource_metrics_are_not_ours(srv, tmp_path):
    cpu = """\
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 80
"""
    out = ok(explain(srv, hpa(cpu + EXTERNAL_AVG_10, current=3), tmp_path=tmp_path))
    assert "not served by scalemetrics" in out, out
    assert desired(out) == 4


def test_input_errors(srv, tmp_path):
    p = explain(srv, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", tmp_path=tmp_path)
    assert p.returncode == 2, p
    assert "not a HorizontalPodAutoscaler" in p.stderr, p.stderr

    p = explain(srv, hpa(EXTERNAL_AVG_10), tmp_path=tmp_path)  # no status, no flag
    assert p.returncode == 2, p
    assert "--current-replicas" in p.stderr, p.stderr

    p = explain(srv, "metrics: [\n", stdin=True)
    assert p.returncode == 2, p
    assert "(stdin):" in p.stderr, p.stderr
