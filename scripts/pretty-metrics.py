#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Prints a discovery document, a metric value list or a Status from stdin compactly, one
resource or item per line (used by scripts/demo.sh). Anything else is printed as it came."""

import json
import sys


def main():
    raw = sys.stdin.read()
    try:
        d = json.loads(raw)
    except ValueError:
        print("  " + raw.strip().replace("\n", "\n  "))
        return
    kind = d.get("kind", "?")
    print(f"  {kind} {d.get('groupVersion') or d.get('apiVersion', '')}")
    for r in d.get("resources", []):
        scope = "namespaced" if r.get("namespaced") else "cluster-scoped"
        print(f"    {r.get('name', ''):<50} {r.get('kind', '')} ({scope})")
    for i in d.get("items", []):
        if "describedObject" in i:
            o = i["describedObject"]
            metric = (i.get("metric") or {}).get("name") or i.get("metricName")
            what = f"{o.get('kind')}/{o.get('name')} {metric}"
        else:
            labels = ",".join(f"{k}={v}" for k, v in sorted((i.get("metricLabels") or {}).items()))
            what = f"{i.get('metricName')}{{{labels}}}"
        print(f"    {what:<58} = {i.get('value'):>8}   at {i.get('timestamp')}")
    if kind.endswith("List") and not d.get("items") and not d.get("resources"):
        print("    (empty)")
    if kind == "Status":
        print(f"    {d.get('code')} {d.get('reason')}: {d.get('message')}")


if __name__ == "__main__":
    main()
