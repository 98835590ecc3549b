# SPDX-License-Identifier: MIT
"""Deployments and HorizontalPodAutoscalers for the scenarios, and what a kubelet would do to
a pod (there is none here: pods stay Pending unless a test marks them Running and Ready)."""

import json

from smtest import to_yaml

NS = "default"


def deployment(name, labels, replicas=1):
    return to_yaml({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name, **labels}},
                              "spec": {"containers": [{"name": "main",
                                                       "image": "worker:e2e"}]}}}}) + "\n"


# Scale up without the default 15 s step limit (1 -> 5 -> 10), and down at once: the
# scenarios assert the count the algorithm reaches, not the pacing of the default behaviour.
FAST = {"scaleUp": {"stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}]},
        "scaleDown": {"stabilizationWindowSeconds": 0,
                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]}}


def hpa(name, metric, min_replicas=1, max_replicas=20, behavior=None):
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas, "maxReplicas": max_replicas, "metrics": [metric],
            "behavior": behavior or FAST}
    return json.dumps({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                       "metadata": {"name": name, "namespace": NS}, "spec": spec})


def external(metric, target, match_labels=None, average=True):
    m = {"name": metric}
    if match_labels:
        m["selector"] = {"matchLabels": match_labels}
    t = ({"type": "AverageValue", "averageValue": target} if average
         else {"type": "Value", "value": target})
    return {"type": "External", "external": {"metric": m, "target": t}}


def pods_metric(metric, average_value):
    return {"type": "Pods", "pods": {"metric": {"name": metric},
                                     "target": {"type": "AverageValue",
                                                "averageValue": average_value}}}


def object_metric(metric, resource_kind, name, average_value):
    return {"type": "Object",
            "object": {"metric": {"name": metric},
                       "describedObject": {"apiVersion": "apps/v1", "kind": resource_kind,
                                           "name": name},
                       "target": {"type": "AverageValue", "averageValue": average_value}}}


def pods_of(cluster, app):
    doc = cluster.json("get", "pods", "-n", NS, "-l", f"app={app}")
    return sorted(p["metadata"]["name"] for p in doc["items"])


def mark_running(cluster, pod, ip):
    """What the kubelet would report: Running, Ready, an IP."""
    status = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                         "conditions": [{"type": "Ready", "status": "True"}]}}
    cluster.kubectl("patch", "pod", pod, "-n", NS, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))


def hpa_conditions(cluster, name):
    doc = cluster.json("get", "hpa", name, "-n", NS)
    return {c["type"]: c for c in doc.get("status", {}).get("conditions", [])}


def describe_hpa(cluster, name):
    return cluster.kubectl("describe", "hpa", name, "-n", NS).stdout
