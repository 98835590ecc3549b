# SPDX-License-Identifier: MIT
"""The control plane the other scenarios run on. Where there are no Kubernetes binaries this
is the suite's one test, skipped with the reason (conftest.py leaves the others out)."""

import pytest

from conftest import APISERVICES, apiservice_available, control_plane_missing


def test_control_plane_serves_and_scalemetrics_is_registered(request):
    why = control_plane_missing()
    if why:
        pytest.skip(f"e2e suite skipped: {why}")
    cluster = request.getfixturevalue("cluster")
    request.getfixturevalue("scalemetrics")
    assert cluster.raw("/readyz").stdout.strip() == "ok"
    version = cluster.json("version")
    assert version["serverVersion"]["gitVersion"].startswith("v1."), version
    for name in APISERVICES:
        c = apiservice_available(cluster, name)
        assert c and c["status"] == "True", (name, c)
