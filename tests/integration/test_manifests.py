# SPDX-License-Identifier: MIT
"""Deployment checks: the kustomize base and overlays, the example HPAs and their config, and
the Containerfile's runtime packages against what the built binary links.

Self-contained (no conftest fixtures). Needs kubectl (its built-in kustomize) and python3-yaml;
the binary-based checks use $SM_BINARY or build/scalemetrics and skip, saying why, when it is
not built or does not implement what they need yet.
"""

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="python3-yaml is not installed (apt install python3-yaml)")

ROOT = Path(os.environ.get("SM_SOURCE_ROOT") or Path(__file__).resolve().parents[2])
MANIFESTS = ROOT / "manifests"
EXAMPLES = MANIFESTS / "examples"
CONTAINERFILE = ROOT / "Containerfile"

TARGETS = ["base", "overlays/dev", "overlays/staging", "overlays/production"]
OVERLAYS = {"dev": 1, "staging": 2, "production": 3}

NAMESPACE = "scalemetrics"
APP = "scalemetrics"
METRIC_GROUPS = {"custom.metrics.k8s.io", "external.metrics.k8s.io"}

# Kinds without a namespace.
CLUSTER_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "APIService"}

# Pod Security "restricted": volume types allowed (pod-security-standards, restricted policy).
ALLOWED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}


# ---- helpers -----------------------------------------------------------------------------

def kubectl():
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: cannot render the kustomizations")
    return path


@functools.lru_cache(maxsize=None)
def render(target):
    """Renders a kustomization with `kubectl kustomize`; returns the list of objects."""
    proc = subprocess.run([kubectl(), "kustomize", str(MANIFESTS / target)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {target} failed:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
    assert docs, f"kubectl kustomize {target} rendered nothing"
    return tuple(docs)


def objs(target, kind):
    return [o for o in render(target) if o["kind"] == kind]


def one(target, kind, name=None):
    found = [o for o in objs(target, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{target}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployment(target):
    return one(target, "Deployment", APP)


def pod_spec(target):
    return deployment(target)["spec"]["template"]["spec"]


def container(target):
    cs = pod_spec(target)["containers"]
    assert len(cs) == 1, f"{target}: expected one container, found {len(cs)}"
    return cs[0]


def pod_labels(target):
    return deployment(target)["spec"]["template"]["metadata"]["labels"]


def selector_matches(selector, labels):
    """matchLabels / matchExpressions (In, NotIn, Exists, DoesNotExist) against a label map."""
    assert selector, "empty selector"
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def server_config(target):
    """The config.yaml held by the rendered ConfigMap the Deployment mounts."""
    vol = volume(target, "config")
    cm_name = vol["configMap"]["name"]
    cm = one(target, "ConfigMap", cm_name)
    assert "config.yaml" in cm["data"], f"{target}: ConfigMap {cm_name} has no config.yaml"
    return cm["data"]["config.yaml"]


def volume(target, name):
    vols = [v for v in pod_spec(target).get("volumes", []) if v["name"] == name]
    assert len(vols) == 1, f"{target}: volume {name} not found"
    return vols[0]


def mount_for(target, path):
    """The volume mount whose mountPath is the directory holding path."""
    for m in container(target).get("volumeMounts", []):
        if os.path.dirname(path.rstrip("/")) == m["mountPath"].rstrip("/"):
            return m
    return None


def memory_bytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|M|G)?", str(q))
    assert m, f"unexpected memory quantity {q!r}"
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6,
            "G": 10**9}[m.group(2)]
    return int(m.group(1)) * mult


def cpu_millis(q):
    s = str(q)
    return int(s[:-1]) if s.endswith("m") else int(float(s) * 1000)


# ---- rendering and object inventory ------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_kustomize_renders(target):
    for o in render(target):
        assert o.get("apiVersion") and o.get("kind"), f"{target}: object without apiVersion/kind"
        assert o.get("metadata", {}).get("name"), f"{target}: {o['kind']} without a name"
    kinds = [o["kind"] for o in render(target)]
    for kind, n in [("Namespace", 1), ("ServiceAccount", 1), ("Deployment", 1), ("Service", 1),
                    ("ConfigMap", 1), ("APIService", 3), ("RoleBinding", 1)]:
        assert kinds.count(kind) == n, f"{target}: expected {n} {kind}, got {kinds.count(kind)}"
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in render(target)]
    dupes = {k for k in keys if keys.count(k) > 1}
    assert not dupes, f"{target}: duplicate objects {dupes}"


@pytest.mark.parametrize("target", TARGETS)
def test_namespaces(target):
    one(target, "Namespace", NAMESPACE)
    for o in render(target):
        ns = o["metadata"].get("namespace")
        what = f"{target}: {o['kind']} {o['metadata']['name']}"
        if o["kind"] in CLUSTER_KINDS:
            assert ns is None, f"{what} is cluster-scoped but has namespace {ns}"
        elif o["kind"] == "RoleBinding":
            # Binds kube-system's extension-apiserver-authentication-reader: must stay there.
            assert ns == "kube-system", f"{what} must be in kube-system, is in {ns}"
        else:
            assert ns == NAMESPACE, f"{what} is in namespace {ns}, want {NAMESPACE}"


@pytest.mark.parametrize("target", TARGETS)
def test_labels_and_selectors(target):
    dep = deployment(target)
    labels = pod_labels(target)
    assert labels.get("app.kubernetes.io/name") == APP
    assert selector_matches(dep["spec"]["selector"], labels), \
        f"{target}: Deployment selector does not match its pod template labels"
    svc = one(target, "Service", APP)
    sel = svc["spec"]["selector"]
    assert sel and all(labels.get(k) == v for k, v in sel.items()), \
        f"{target}: Service selector {sel} does not match pod labels {labels}"
    for o in render(target):
        assert o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == APP, \
            f"{target}: {o['kind']} {o['metadata']['name']} lacks app.kubernetes.io/part-of"


@pytest.mark.parametrize("target", TARGETS)
def test_ports_service_apiservice(target):
    c = container(target)
    ports = {p["name"]: p for p in c["ports"]}
    assert ports.get("https", {}).get("containerPort") == 6443, f"{target}: no https port 6443"
    svc = one(target, "Service", APP)
    assert len(svc["spec"]["ports"]) == 1
    sp = svc["spec"]["ports"][0]
    # The aggregator needs a named Service port that the EndpointSlice port shares.
    assert sp.get("name") == "https" and sp["port"] == 443, f"{target}: Service port {sp}"
    tp = sp["targetPort"]
    assert tp in ports or tp in [p["containerPort"] for p in ports.values()], \
        f"{target}: Service targetPort {tp} is not a container port"
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["scheme"] == "HTTPS", f"{target}: {probe} must use HTTPS"
        assert get["port"] in ports or get["port"] == 6443, f"{target}: {probe} port {get['port']}"
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for api in objs(target, "APIService"):
        s = api["spec"]["service"]
        assert (s["name"], s["namespace"], s.get("port", 443)) == \
            (svc["metadata"]["name"], svc["metadata"]["namespace"], sp["port"]), \
            f"{target}: APIService {api['metadata']['name']} points at {s}"


@pytest.mark.parametrize("target", TARGETS)
def test_service_account_and_rbac(target):
    sa = one(target, "ServiceAccount", APP)
    sa_ref = {"kind": "ServiceAccount", "name": sa["metadata"]["name"],
              "namespace": sa["metadata"]["namespace"]}
    spec = pod_spec(target)
    assert spec["serviceAccountName"] == sa["metadata"]["name"]
    assert spec.get("automountServiceAccountToken", True) is not False, \
        "the server needs its token (TokenReview, SubjectAccessReview, pod lists)"

    bindings = objs(target, "ClusterRoleBinding") + objs(target, "RoleBinding")
    roles = {o["metadata"]["name"]: o for o in objs(target, "ClusterRole")}

    def bound(role_kind, role_name, subject, ns=None):
        for b in bindings:
            if ns is not None and b["metadata"].get("namespace") != ns:
                continue
            if b["roleRef"]["kind"] == role_kind and b["roleRef"]["name"] == role_name and \
                    any({k: s.get(k) for k in ("kind", "name", "namespace")} == subject
                        for s in b["subjects"]):
                return True
        return False

    assert bound("ClusterRole", "system:auth-delegator", sa_ref)
    assert bound("Role", "extension-apiserver-authentication-reader", sa_ref, ns="kube-system")
    # pods get/list/watch for scraping
    pod_roles = [n for n, r in roles.items()
                 if any("" in rule.get("apiGroups", []) and "pods" in rule.get("resources", [])
                        and {"get", "list", "watch"} <= set(rule.get("verbs", []))
                        for rule in r["rules"])]
    assert any(bound("ClusterRole", n, sa_ref) for n in pod_roles), \
        f"{target}: no ClusterRole granting pods get/list/watch bound to the ServiceAccount"
    # the HPA controller reads both metrics APIs
    reader = roles.get("scalemetrics-metrics-reader")
    assert reader, f"{target}: ClusterRole scalemetrics-metrics-reader missing"
    granted = set()
    for rule in reader["rules"]:
        if "*" in rule.get("resources", []) and {"get", "list"} <= set(rule.get("verbs", [])):
            granted |= set(rule.get("apiGroups", []))
    assert METRIC_GROUPS <= granted, f"{target}: metrics-reader grants {granted}"
    hpa = {"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler",
           "namespace": "kube-system"}
    assert bound("ClusterRole", "scalemetrics-metrics-reader", hpa)
    # every ServiceAccount subject of our bindings (but the HPA's) exists
    for b in bindings:
        for s in b["subjects"]:
            if s["kind"] == "ServiceAccount" and s != hpa:
                assert s == sa_ref, f"{target}: {b['metadata']['name']} binds unknown SA {s}"
    # every ClusterRole we bind to (but the built-in system: ones) is ours and rendered
    for b in bindings:
        rr = b["roleRef"]
        if rr["kind"] == "ClusterRole" and not rr["name"].startswith("system:"):
            assert rr["name"] in roles, f"{target}: {b['metadata']['name']} -> missing {rr}"


@pytest.mark.parametrize("target", TARGETS)
def test_volumes_and_config_wiring(target):
    c = container(target)
    vols = {v["name"]: v for v in pod_spec(target)["volumes"]}
    for m in c["volumeMounts"]:
        assert m["name"] in vols, f"{target}: mount of undefined volume {m['name']}"
    # args point at the mounted config
    args = c["args"]
    assert args[:1] == ["serve"] and "--config" in args, f"{target}: args {args}"
    cfg_path = args[args.index("--config") + 1]
    assert cfg_path == "/etc/scalemetrics/config.yaml"
    m = mount_for(target, cfg_path)
    assert m and "configMap" in vols[m["name"]], f"{target}: {cfg_path} is not on the ConfigMap"
    assert vols[m["name"]]["configMap"]["name"].startswith("scalemetrics-config")
    # serving cert secret
    cert = vols[mount_for(target, "/var/run/serving-cert/tls.crt")["name"]]
    assert cert["secret"]["secretName"] == "scalemetrics-serving-cert"
    cfg = yaml.safe_load(server_config(target))
    srv = cfg["server"]
    assert srv["listen"].rsplit(":", 1)[1] == str(c["ports"][0]["containerPort"])
    assert srv["namespace"] == deployment(target)["metadata"]["namespace"]
    assert srv.get("auth", {}).get("mode", "delegated") == "delegated"
    for key in ("cert_file", "key_file"):
        path = srv["tls"][key]
        mm = mount_for(target, path)
        assert mm and mm["name"] == cert_vol_name(target), f"{target}: {key} {path} not mounted"
    # every *_file of every source sits on a mounted Secret
    for src in cfg["sources"]:
        for key, val in src.items():
            if key.endswith("_file") and val:
                mm = mount_for(target, val)
                assert mm, f"{target}: source {src['name']} {key} {val} is not on a mount"
                assert "secret" in vols[mm["name"]], f"{target}: {val} is not from a Secret"
    redis = vols["redis-password"]["secret"]
    assert redis["secretName"] == "scalemetrics-redis" and redis.get("optional") is True


def cert_vol_name(target):
    for v in pod_spec(target)["volumes"]:
        if v.get("secret", {}).get("secretName") == "scalemetrics-serving-cert":
            return v["name"]
    raise AssertionError(f"{target}: no volume from Secret scalemetrics-serving-cert")


@pytest.mark.parametrize("target", TARGETS)
def test_resources_present(target):
    res = container(target)["resources"]
    assert "cpu" in res["requests"] and "memory" in res["requests"]
    assert "memory" in res["limits"]
    assert memory_bytes(res["limits"]["memory"]) >= memory_bytes(res["requests"]["memory"])


# ---- overlays ----------------------------------------------------------------------------

@pytest.mark.parametrize("env,replicas", OVERLAYS.items())
def test_overlay_replicas(env, replicas):
    assert deployment(f"overlays/{env}")["spec"]["replicas"] == replicas


@pytest.mark.parametrize("target", TARGETS)
def test_pdb_and_networkpolicy_only_where_intended(target):
    want = target in ("overlays/staging", "overlays/production")
    pdbs = objs(target, "PodDisruptionBudget")
    nps = objs(target, "NetworkPolicy")
    assert bool(pdbs) == want, f"{target}: PodDisruptionBudget present={bool(pdbs)}"
    assert bool(nps) == want, f"{target}: NetworkPolicy present={bool(nps)}"
    labels = pod_labels(target)
    for pdb in pdbs:
        assert pdb["spec"]["minAvailable"] == 1
        assert selector_matches(pdb["spec"]["selector"], labels)
        assert pdb["spec"]["minAvailable"] < deployment(target)["spec"]["replicas"], \
            "a PDB must leave room for one voluntary disruption"
    port = container(target)["ports"][0]["containerPort"]
    for np in nps:
        assert selector_matches(np["spec"]["podSelector"], labels)
        assert np["spec"]["policyTypes"] == ["Ingress"]
        rules = np["spec"]["ingress"]
        assert rules, "an empty ingress list would deny everything, probes included"
        for rule in rules:
            assert [p["port"] for p in rule["ports"]] == [port]
            assert rule["from"], "a rule without `from` admits every source"
            kinds = {k for peer in rule["from"] for k in peer}
            assert "ipBlock" in kinds and "namespaceSelector" in kinds


def test_production_anti_affinity():
    spec = pod_spec("overlays/production")
    terms = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(t["topologyKey"] == "kubernetes.io/hostname" and
               selector_matches(t["labelSelector"], pod_labels("overlays/production"))
               for t in terms)
    # required anti-affinity + surge would strand the surge pod on a 3-node cluster
    assert deployment("overlays/production")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    for env in ("dev", "staging"):
        assert "affinity" not in pod_spec(f"overlays/{env}")


def test_resources_grow_with_environment():
    res = [container(f"overlays/{e}")["resources"] for e in OVERLAYS]
    for key, conv in (("requests", memory_bytes), ("limits", memory_bytes)):
        vals = [conv(r[key]["memory"]) for r in res]
        assert vals == sorted(vals) and vals[0] < vals[-1], f"memory {key} {vals}"
    cpus = [cpu_millis(r["requests"]["cpu"]) for r in res]
    assert cpus == sorted(cpus) and cpus[0] < cpus[-1], f"cpu requests {cpus}"
    # base = dev figures: the image's measured ones (bench/README.md, "Container image")
    base = container("base")["resources"]
    assert base == {"requests": {"cpu": "25m", "memory": "24Mi"}, "limits": {"memory": "96Mi"}}


TIMING_KEYS = {"interval", "timeout", "max_age"}


def strip_env_settings(cfg):
    cfg = dict(cfg)
    cfg["server"] = {k: v for k, v in cfg["server"].items() if k != "log_level"}
    cfg["sources"] = [{k: v for k, v in s.items() if k not in TIMING_KEYS}
                      for s in cfg["sources"]]
    return cfg


@pytest.mark.parametrize("env,level", [("dev", "debug"), ("staging", "info"),
                                       ("production", "info")])
def test_overlay_config_differs_only_per_environment(env, level):
    base = yaml.safe_load(server_config("base"))
    cfg = yaml.safe_load(server_config(f"overlays/{env}"))
    assert cfg["server"]["log_level"] == level
    assert strip_env_settings(cfg) == strip_env_settings(base), \
        f"overlays/{env}/config.yaml drifted from base/config.yaml beyond log level and timings"
    for s in cfg["sources"]:
        assert "interval" in s, f"{env}: source {s['name']} sets no interval"


def test_intervals_tighten_towards_production():
    def secs(d):
        m = re.fullmatch(r"(\d+)(ms|s|m|h)", d)
        assert m, d
        return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    ivs = [secs(yaml.safe_load(server_config(f"overlays/{e}"))["sources"][0]["interval"])
           for e in OVERLAYS]
    assert ivs == sorted(ivs, reverse=True), f"intervals dev/staging/production {ivs}"


@pytest.mark.parametrize("env", OVERLAYS)
def test_cert_manager_wiring(env):
    target = f"overlays/{env}"
    certs = {c["metadata"]["name"]: c for c in objs(target, "Certificate")}
    issuers = {i["metadata"]["name"]: i for i in objs(target, "Issuer")}
    serving = certs["scalemetrics-serving-cert"]
    svc = one(target, "Service", APP)
    host = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc"
    assert host in serving["spec"]["dnsNames"], f"serving cert lacks SAN {host}"
    assert serving["spec"]["secretName"] == "scalemetrics-serving-cert"
    assert "server auth" in serving["spec"].get("usages", ["server auth"])
    for c in certs.values():
        assert c["spec"]["issuerRef"]["name"] in issuers, f"{c['metadata']['name']}: bad issuer"
    ca_issuer = issuers[serving["spec"]["issuerRef"]["name"]]
    ca_cert = [c for c in certs.values() if c["spec"]["secretName"] ==
               ca_issuer["spec"]["ca"]["secretName"]]
    assert ca_cert and ca_cert[0]["spec"]["isCA"] is True
    assert "selfSigned" in issuers[ca_cert[0]["spec"]["issuerRef"]["name"]]["spec"]
    for api in objs(target, "APIService"):
        ref = api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert ref == f"{serving['metadata']['namespace']}/{serving['metadata']['name']}"


# ---- Pod Security (restricted), as explicit assertions ----------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_pod_security_restricted(target):
    spec = pod_spec(target)
    psc = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(flag), f"{target}: {flag}"
    for v in spec.get("volumes", []):
        types = set(v) - {"name"}
        assert types <= ALLOWED_VOLUME_TYPES, f"{target}: volume {v['name']} uses {types}"
        assert "hostPath" not in v
    for c in spec.get("initContainers", []) + spec["containers"] + \
            spec.get("ephemeralContainers", []):
        sc = c.get("securityContext", {})
        name = f"{target}: container {c['name']}"

        def eff(key):
            return sc[key] if key in sc else psc.get(key)

        assert eff("runAsNonRoot") is True, f"{name}: runAsNonRoot"
        uid = eff("runAsUser")
        assert uid is None or uid != 0, f"{name}: runAsUser 0"
        assert uid == 65532, f"{name}: runAsUser {uid}, want 65532 (the image's USER)"
        assert sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation"
        assert not sc.get("privileged"), f"{name}: privileged"
        caps = sc.get("capabilities", {})
        assert caps.get("drop") == ["ALL"], f"{name}: capabilities.drop {caps.get('drop')}"
        assert set(caps.get("add", [])) <= {"NET_BIND_SERVICE"}, f"{name}: adds {caps['add']}"
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        assert seccomp in ("RuntimeDefault", "Localhost"), f"{name}: seccompProfile {seccomp}"
        assert sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem"
        assert "procMount" not in sc or sc["procMount"] == "Default"
        assert not sc.get("seLinuxOptions", {}).get("type") or \
            sc["seLinuxOptions"]["type"] in ("container_t", "container_init_t", "container_kvm_t")
        for p in c.get("ports", []):
            assert not p.get("hostPort"), f"{name}: hostPort"
    assert not psc.get("sysctls"), f"{target}: sysctls"


def test_namespace_enforces_restricted():
    labels = one("base", "Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"


# ---- APIService -------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_apiservices(target):
    apis = {a["metadata"]["name"]: a["spec"] for a in objs(target, "APIService")}
    assert set(apis) == {"v1beta2.custom.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io",
                         "v1beta1.external.metrics.k8s.io"}
    for name, spec in apis.items():
        assert name == f"{spec['version']}.{spec['group']}", f"{name} != version.group"
        assert 1 <= spec["groupPriorityMinimum"] <= 20000
        assert 1 <= spec["versionPriority"] <= 1000
        assert spec["groupPriorityMinimum"] == 100
        assert not (spec.get("insecureSkipTLSVerify") and spec.get("caBundle")), \
            f"{name}: caBundle and insecureSkipTLSVerify are mutually exclusive"
        assert not spec.get("insecureSkipTLSVerify"), f"{name}: TLS verification disabled"
        assert re.fullmatch(r"v\d+((alpha|beta)\d+)?", spec["version"])
    assert apis["v1beta2.custom.metrics.k8s.io"]["versionPriority"] > \
        apis["v1beta1.custom.metrics.k8s.io"]["versionPriority"]
    assert apis["v1beta1.external.metrics.k8s.io"]["versionPriority"] == 100


# ---- the real binary's `check` on the deployed configs -----------------------------------

def binary():
    path = Path(os.environ.get("SM_BINARY") or ROOT / "build" / "scalemetrics")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"scalemetrics binary not built at {path} (set SM_BINARY or build it)")
    return path


def run_check(path, tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("server:\n  listen: \"127.0.0.1:6443\"\n  intervall: 5s\nsources: []\n")
    proc = subprocess.run([str(binary()), "check", "--config", str(bad)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode == 0:
        pytest.skip("`scalemetrics check` accepts a config with an unknown key: "
                    "the check command is not implemented yet")
    return subprocess.run([str(binary()), "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("target", TARGETS)
def test_configmap_passes_binary_check(target, tmp_path):
    text = server_config(target)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(text)
    proc = run_check(cfg_file, tmp_path)
    if proc.returncode == 0:
        return
    out = proc.stdout + proc.stderr
    # In the pod, the referenced files come from mounted Secrets. If `check` insists on
    # reading them, give it stand-ins at the same names and check the rest of the config.
    pod_paths = sorted(set(re.findall(r"/var/run/[\w./-]+", text)))
    if not any(p in out for p in pod_paths):
        pytest.fail(f"{target}: scalemetrics check rejected the ConfigMap:\n{out}")
    subst = text
    stand_ins = make_stand_ins(tmp_path, pod_paths)
    for p, local in stand_ins.items():
        subst = subst.replace(p, str(local))
    cfg_file.write_text(subst)
    proc2 = subprocess.run([str(binary()), "check", "--config", str(cfg_file)],
                           capture_output=True, text=True, timeout=30)
    assert proc2.returncode == 0, \
        f"{target}: scalemetrics check rejected the ConfigMap (with stand-in files for " \
        f"{pod_paths}):\n{proc2.stdout}{proc2.stderr}\nfirst run:\n{out}"


def make_stand_ins(tmp_path, pod_paths):
    """Local files in place of the pod's mounted Secrets: a real key pair for tls.*."""
    d = tmp_path / "mounts"
    d.mkdir()
    out = {}
    crt, key = d / "tls.crt", d / "tls.key"
    if any(p.endswith(("tls.crt", "tls.key")) for p in pod_paths):
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("openssl CLI missing: cannot make a stand-in serving certificate")
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=scalemetrics.scalemetrics.svc", "-keyout", str(key),
                        "-out", str(crt)], check=True, capture_output=True, timeout=60)
    for p in pod_paths:
        if p.endswith("tls.crt"):
            out[p] = crt
        elif p.endswith("tls.key"):
            out[p] = key
        else:
            f = d / p.strip("/").replace("/", "_")
            f.write_text("stand-in\n")
            out[p] = f
    return out


# ---- examples: HPAs and the config that defines their metrics ---------------------------

PGBOUNCER_BUILTINS = {
    "pgbouncer_pool_utilization": {"database", "user"},
    "pgbouncer_clients_waiting": {"database", "user"},
    "pgbouncer_clients_active": {"database", "user"},
    "pgbouncer_max_wait_seconds": {"database", "user"},
}
POSTGRESQL_BUILTINS = {
    "postgresql_connections": {"state", "database", "user"},
    "postgresql_connections_max": set(),
    "postgresql_connection_utilization": set(),
}
REDIS_PRESETS = {
    "sidekiq": ["sidekiq_queue_length", "sidekiq_queue_latency_seconds", "sidekiq_scheduled",
                "sidekiq_retries", "sidekiq_dead"],
    "celery": ["celery_queue_length", "celery_unacked"],
    "rq": ["rq_queue_length", "rq_started", "rq_failed", "rq_scheduled"],
    "bullmq": ["bullmq_waiting", "bullmq_active", "bullmq_delayed", "bullmq_delayed_due",
               "bullmq_prioritized", "bullmq_paused"],
}
SOURCE_TYPES = {"redis", "postgresql", "pgbouncer", "scrape"}


def example_config():
    with open(EXAMPLES / "config.yaml") as f:
        return yaml.safe_load(f)


def defined_metrics(cfg):
    """metric name -> {source, type, labels (set, or None when unknown), namespaces}."""
    default_ns = cfg.get("server", {}).get("namespace", "default")
    out = {}

    def add(name, src, labels):
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), f"bad metric name {name!r}"
        assert name not in out, f"metric {name} defined twice ({out.get(name, {}).get('source')}" \
                                f" and {src['name']})"
        out[name] = {"source": src["name"], "type": src["type"], "labels": labels,
                     "namespaces": src.get("namespaces") or [default_ns],
                     "pods_namespace": (src.get("pods") or {}).get("namespace")}

    for src in cfg["sources"]:
        t = src["type"]
        assert t in SOURCE_TYPES, f"source {src['name']}: unknown type {t}"
        if t == "redis":
            for rule in src.get("queues", []):
                if "preset" in rule:
                    for n in REDIS_PRESETS[rule["preset"]]:
                        add(n, src, None)
                    continue
                label = rule.get("label", "queue")
                add(rule["metric"], src, {label})
                if rule.get("derived"):
                    add(rule["metric"] + "_growth_per_second", src, {label})
                    add(rule["metric"] + "_drain_seconds", src, {label})
        elif t == "postgresql":
            if src.get("builtin"):
                for n, labels in POSTGRESQL_BUILTINS.items():
                    add(n, src, labels)
            for q in src.get("queries", []):
                add(q["metric"], src, None)
        elif t == "pgbouncer":
            for n, labels in PGBOUNCER_BUILTINS.items():
                add(n, src, labels)
        elif t == "scrape":
            for r in src.get("rates", []):
                add(r["metric"], src, set(r.get("by", [])))
            for q in src.get("quantiles", []):
                add(q["metric"], src, set(q.get("by", [])))
            for g in src.get("gauges", []):
                add(g["metric"], src, None)
    return out


def test_example_config_is_valid():
    cfg = example_config()
    names = [s["name"] for s in cfg["sources"]]
    assert len(names) == len(set(names)), f"duplicate source names {names}"
    for s in cfg["sources"]:
        assert re.fullmatch(r"[a-z0-9-]+", s["name"])
    assert {s["type"] for s in cfg["sources"]} == SOURCE_TYPES - {"postgresql"}, \
        "the example config should show redis, pgbouncer and scrape sources"
    metrics = defined_metrics(cfg)
    assert "redis_queue_length" in metrics
    # secrets are never inline
    for s in cfg["sources"]:
        for k in s:
            assert k not in ("password", "dsn"), f"source {s['name']}: inline secret key {k}"
    # the server part equals the base one: only sources differ
    base = yaml.safe_load(server_config("base"))
    assert cfg["server"] == base["server"]


EXAMPLE_HPAS = sorted(p.name for p in EXAMPLES.glob("hpa-*.yaml"))


def test_example_hpa_set():
    assert len(EXAMPLE_HPAS) >= 5
    rendered = [o["metadata"]["name"] for o in render("examples")]
    assert len(rendered) == len(EXAMPLE_HPAS), "examples/kustomization.yaml misses a file"


def load_hpa(fname):
    with open(EXAMPLES / fname) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert len(docs) == 1, f"{fname}: one HPA per file"
    return docs[0]


QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?")


@pytest.mark.parametrize("fname", EXAMPLE_HPAS)
def test_example_hpa(fname):
    hpa = load_hpa(fname)
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["kind"] == "HorizontalPodAutoscaler"
    spec = hpa["spec"]
    ns = hpa["metadata"].get("namespace", "default")
    ref = spec["scaleTargetRef"]
    assert ref["kind"] and ref["name"] and ref["apiVersion"]
    assert 1 <= spec.get("minReplicas", 1) <= spec["maxReplicas"]
    assert set(spec) <= {"scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"}
    metrics = defined_metrics(example_config())
    assert spec["metrics"], f"{fname}: no metrics"
    for m in spec["metrics"]:
        mtype = m["type"]
        assert mtype in ("Pods", "Object", "External"), f"{fname}: {mtype} is not ours"
        block = m[mtype.lower()]
        name = block["metric"]["name"]
        assert name in metrics, f"{fname}: metric {name} is not defined by examples/config.yaml"
        d = metrics[name]
        target = block["target"]
        allowed = {"Pods": {"AverageValue"}, "Object": {"Value", "AverageValue"},
                   "External": {"Value", "AverageValue"}}[mtype]
        assert target["type"] in allowed, f"{fname}: {mtype} with target {target['type']}"
        key = {"Value": "value", "AverageValue": "averageValue"}[target["type"]]
        assert QUANTITY.fullmatch(str(target[key])), f"{fname}: bad quantity {target[key]!r}"
        if mtype == "Pods":
            assert d["type"] == "scrape", f"{fname}: Pods metric {name} from a {d['type']} source"
            assert d["pods_namespace"] == ns, \
                f"{fname}: source {d['source']} scrapes pods in {d['pods_namespace']}, HPA in {ns}"
        if mtype == "External":
            assert ns in d["namespaces"], \
                f"{fname}: {name} is served in {d['namespaces']}, the HPA is in {ns}"
            sel = block["metric"].get("selector") or {}
            if d["labels"] is not None:
                keys = set(sel.get("matchLabels", {})) | \
                    {e["key"] for e in sel.get("matchExpressions", [])}
                assert keys <= d["labels"], \
                    f"{fname}: selector keys {keys} not among {name}'s labels {d['labels']}"
        if mtype == "Object":
            assert block["describedObject"]["kind"] and block["describedObject"]["name"]
    for direction, b in (spec.get("behavior") or {}).items():
        assert direction in ("scaleUp", "scaleDown")
        assert 0 <= b.get("stabilizationWindowSeconds", 0) <= 3600
        assert b.get("selectPolicy", "Max") in ("Max", "Min", "Disabled")
        for p in b.get("policies", []):
            assert p["type"] in ("Pods", "Percent") and p["value"] > 0
            assert 0 < p["periodSeconds"] <= 1800


def example_by_metric(name):
    for fname in EXAMPLE_HPAS:
        hpa = load_hpa(fname)
        for m in hpa["spec"]["metrics"]:
            if m[m["type"].lower()]["metric"]["name"] == name:
                return hpa, m
    raise AssertionError(f"no example HPA on {name}")


def test_examples_named_by_the_issue():
    hpa, m = example_by_metric("redis_queue_length")
    assert m["type"] == "External"
    assert m["external"]["metric"]["selector"]["matchLabels"] == {"queue": "emails"}
    assert m["external"]["target"] == {"type": "AverageValue", "averageValue": "10"}
    hpa, m = example_by_metric("http_requests_per_second")
    assert m["type"] == "Pods"
    assert m["pods"]["target"] == {"type": "AverageValue", "averageValue": "100"}
    assert {"scaleUp", "scaleDown"} <= set(hpa["spec"]["behavior"])
    example_by_metric("redis_queue_length_drain_seconds")
    example_by_metric("http_request_duration_p95_seconds")
    hpa, m = example_by_metric("pgbouncer_pool_utilization")
    t = m[m["type"].lower()]["target"]
    assert t.get("value", t.get("averageValue")) == "800m"


# ---- Containerfile ----------------------------------------------------------------------

# Packages in the runtime stage that hold no library the binary links, with the reason.
NON_LIBRARY_PACKAGES = {"ca-certificates": "CA roots for https scrape targets and libcurl"}
# Base-image packages never listed: the C library and the compiler runtime.
BASE_PACKAGES = {"libc6", "libgcc-s1"}


def containerfile_stages():
    stages = []
    for line in CONTAINERFILE.read_text().splitlines():
        if re.match(r"\s*FROM\s", line, re.I):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def runtime_packages():
    text = CONTAINERFILE.read_text()
    m = re.search(r"# runtime-packages-begin\n(.*?)# runtime-packages-end", text, re.S)
    assert m, "Containerfile: runtime-packages-begin/end markers missing"
    block = m.group(1).replace("\\\n", " ")
    m2 = re.search(r"apt-get install\s+(.*?)(&&|$)", block, re.S)
    assert m2, "Containerfile: no apt-get install between the markers"
    return {t for t in m2.group(1).split() if not t.startswith("-")}


def test_containerfile_structure():
    stages = containerfile_stages()
    assert len(stages) == 3, "three stages: build, rootfs (the files the image holds), the image"
    build, rootfs, run = ("\n".join(s) for s in stages)
    assert re.match(r"FROM debian:bookworm AS build", build)
    assert "meson setup" in build and "-Dbuildtype=release" in build
    # The runtime packages go on the slim image, and from there exactly what the binary loads
    # (ldd) is copied into the root file system the image is made of.
    assert re.match(r"FROM debian:bookworm-slim AS rootfs\b", rootfs)
    assert "# runtime-packages-begin" in rootfs
    assert "COPY --from=build" in rootfs
    assert "--no-install-recommends" in rootfs
    assert re.search(r"\bldd\b", rootfs)
    # The image is that root file system and nothing else: no base image, no shell to RUN.
    assert re.match(r"FROM scratch\b", run)
    assert re.findall(r"^(?:COPY|ADD|RUN)\b.*$", run, re.M) == ["COPY --from=rootfs /rootfs /"]
    assert re.search(r"^USER 65532(:65532)?$", run, re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/scalemetrics"]' in run
    # the rootfs stage installs no compiler, headers or build tools
    for pkg in runtime_packages():
        assert not pkg.endswith("-dev") and pkg not in ("build-essential", "meson", "gcc")
    # its CMD is the Deployment's args
    cmd = re.search(r"^CMD (\[.*\])$", run, re.M)
    assert cmd and yaml.safe_load(cmd.group(1)) == container("base")["args"]
    uid = pod_spec("base")["securityContext"]["runAsUser"]
    assert f"USER {uid}" in run


def needed_entries(path):
    proc = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", proc.stdout)


def resolved_paths(path):
    proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"ldd {path}: {proc.stderr}"
    out = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(", line)
        if m:
            out[m.group(1)] = m.group(2)
        elif "not found" in line:
            pytest.fail(f"ldd: {line.strip()}")
    return out


def owning_package(path):
    real = os.path.realpath(path)
    candidates = []
    for p in (path, real):
        candidates.append(p)
        if p.startswith("/usr/lib/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            candidates.append("/usr" + p)
    for c in dict.fromkeys(candidates):
        proc = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            continue
        for line in proc.stdout.splitlines():
            if line.startswith("diversion "):
                continue
            pkg = line.split(": ", 1)[0].split(",")[0].strip()
            return pkg.split(":", 1)[0]
    return None


def test_runtime_packages_match_linked_libraries():
    bin_path = binary()
    for tool in ("readelf", "ldd", "dpkg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not available")
    needed = needed_entries(bin_path)
    if any(re.match(r"lib(a|ub|t|l|hwa)san", n) for n in needed):
        pytest.skip(f"{bin_path} is a sanitizer build; the image ships a release build")
    paths = resolved_paths(bin_path)
    pkg_of = {}
    for soname in needed:
        assert soname in paths, f"ldd does not resolve NEEDED {soname}"
        pkg = owning_package(paths[soname])
        assert pkg, f"no Debian package owns {paths[soname]} (NEEDED {soname})"
        pkg_of[soname] = pkg
    linked = set(pkg_of.values()) - BASE_PACKAGES
    if not linked:
        pytest.skip(f"{bin_path} links only {sorted(needed)}: it is still the skeleton, "
                    "nothing to compare yet")
    listed = runtime_packages() - set(NON_LIBRARY_PACKAGES)
    missing = linked - listed
    unused = listed - linked
    detail = "\n".join(f"  {s} -> {p}" for s, p in sorted(pkg_of.items()))
    assert not missing and not unused, (
        f"Containerfile runtime packages differ from the binary's direct dependencies:\n"
        f"  linked but not installed: {sorted(missing)}\n"
        f"  installed but not linked: {sorted(unused)}\n"
        f"NEEDED -> package:\n{detail}")
