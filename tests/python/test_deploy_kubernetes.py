"""deploy/kubernetes/: the manifests' structure, checked without a cluster (no kubectl here): the fields each kind
needs, selectors that select their pods, Service ports that reach container ports, probes on /health, resources,
volumes that exist, serve options the binary knows, and the haproxy front's ConfigMap carrying
deploy/haproxy/haproxy.cfg (checked by `haproxy -c` where haproxy is installed)."""

import glob
import os
import re
import subprocess

import pytest
import yaml

from conftest import BIN, SOURCE_DIR, require_haproxy

K8S = os.path.join(SOURCE_DIR, "deploy", "kubernetes")
HAPROXY_CFG = os.path.join(SOURCE_DIR, "deploy", "haproxy", "haproxy.cfg")
REPLICA_MARKER = "    # --- replicas:"
API_VERSIONS = {"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1",
                "Pod": "v1"}
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def load():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.append((os.path.basename(path), doc))
    return docs


DOCS = load()


def of_kind(kind):
    return {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == kind}


def pod_specs():
    """(name, pod spec, pod labels) of every Deployment's template and every Pod."""
    out = [(name, d["spec"]["template"]["spec"], d["spec"]["template"]["metadata"]["labels"])
           for name, d in of_kind("Deployment").items()]
    out += [(name, d["spec"], d["metadata"].get("labels", {})) for name, d in of_kind("Pod").items()]
    return out


def container_port(container, port):
    """The containerPort a probe's or Service's port (a number or a port's name) names, or None."""
    for p in container.get("ports", []):
        if port in (p["containerPort"], p.get("name")):
            return p["containerPort"]
    return None


def haproxy_configmap():
    return of_kind("ConfigMap")["musespark-haproxy"]["data"]["haproxy.cfg"]


def test_every_manifest_has_its_kinds_fields():
    files = {f for f, _ in DOCS}
    assert {"musespark.yaml", "models.yaml", "haproxy.yaml", "model-loader.yaml"} <= files
    seen = set()
    for f, d in DOCS:
        assert set(d) >= {"apiVersion", "kind", "metadata"}, f
        assert d["kind"] in API_VERSIONS, f"{f}: unexpected kind {d['kind']}"
        assert d["apiVersion"] == API_VERSIONS[d["kind"]], f"{f}: {d['kind']} is {API_VERSIONS[d['kind']]}"
        name = d["metadata"]["name"]
        assert NAME.match(name) and len(name) <= 63, f"{f}: bad name {name!r}"
        assert (d["kind"], name) not in seen, f"{f}: {d['kind']} {name} twice"
        seen.add((d["kind"], name))
        for key, value in d["metadata"].get("labels", {}).items():
            assert isinstance(value, str) and len(value) <= 63, f"{f}: label {key}"
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= {k for k, _ in seen}


def test_deployments_select_their_own_pods():
    for name, d in of_kind("Deployment").items():
        spec = d["spec"]
        assert isinstance(spec["replicas"], int) and spec["replicas"] >= 1, name
        selector = spec["selector"]["matchLabels"]
        labels = spec["template"]["metadata"]["labels"]
        assert selector and selector.items() <= labels.items(), f"{name}: selector {selector} not in {labels}"
        # No other Deployment's pods match this selector.
        for other, o in of_kind("Deployment").items():
            if other != name:
                assert not selector.items() <= o["spec"]["template"]["metadata"]["labels"].items(), (name, other)


def test_containers_ports_resources_probes_and_volumes():
    claims, configmaps = of_kind("PersistentVolumeClaim"), of_kind("ConfigMap")
    for name, pod, _ in pod_specs():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert pod["containers"], name
        for c in pod["containers"]:
            assert c["name"] and c["image"], name
            names = [p.get("name") for p in c.get("ports", []) if p.get("name")]
            assert len(names) == len(set(names)) and all(len(n) <= 15 for n in names), name
            for p in c.get("ports", []):
                assert isinstance(p["containerPort"], int) and 0 < p["containerPort"] < 65536, name
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"], f"{name}: resources"
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{name}: mount of an undefined volume {mount['name']}"
                assert mount["mountPath"].startswith("/"), name
            for probe_kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(probe_kind)
                if probe is None:
                    continue
                action = probe.get("httpGet") or probe.get("tcpSocket")
                assert action, f"{name}: {probe_kind} has no httpGet/tcpSocket"
                assert container_port(c, action["port"]) is not None, f"{name}: {probe_kind} port {action['port']}"
                if "httpGet" in probe:
                    assert probe["httpGet"]["path"] == "/health", f"{name}: {probe_kind} not on /health"
        for v in volumes.values():
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims, f"{name}: no claim {v}"
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps, f"{name}: no ConfigMap {v}"
                data = configmaps[v["configMap"]["name"]]["data"]
                for c in pod["containers"]:
                    for mount in c.get("volumeMounts", []):
                        if mount["name"] == v["name"] and "subPath" in mount:
                            assert mount["subPath"] in data, f"{name}: {mount['subPath']} not in the ConfigMap"
    for name, d in of_kind("Deployment").items():
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c["readinessProbe"]["httpGet"]["path"] == "/health", name
            assert "livenessProbe" in c, name


def test_services_reach_container_ports():
    deployments = of_kind("Deployment")
    for name, s in of_kind("Service").items():
        selector = s["spec"]["selector"]
        matched = [d for d in deployments.values()
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, f"Service {name} selects {len(matched)} Deployments"
        containers = matched[0]["spec"]["template"]["spec"]["containers"]
        assert s["spec"]["ports"], name
        for p in s["spec"]["ports"]:
            assert isinstance(p["port"], int), name
            target = p.get("targetPort", p["port"])
            assert any(container_port(c, target) is not None for c in containers), \
                f"Service {name}: targetPort {target} is no container port of {matched[0]['metadata']['name']}"


def test_replicas_run_serve_with_options_it_knows():
    d = of_kind("Deployment")["musespark"]
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    args = c["args"]
    assert args[0] == "serve"
    options = dict(a[2:].split("=", 1) if "=" in a else (a[2:], None) for a in args[1:])
    assert options["host"] == "0.0.0.0"
    assert int(options["port"]) == container_port(c, "http")
    assert int(options["threads"]) == int(c["resources"]["requests"]["cpu"])
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    model_mount = [m for path, m in mounts.items() if options["model"].startswith(path + "/")]
    assert model_mount and model_mount[0].get("readOnly") is True, "the model must come from a read-only mount"
    volume = {v["name"]: v for v in pod["volumes"]}[model_mount[0]["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == "musespark-models"
    # Every option is one `musespark serve` has.
    help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for option in options:
        assert re.search(rf"--{re.escape(option)}\b", help_text), f"musespark serve has no --{option}"
    # The loader writes where the replicas read.
    loader = of_kind("Pod")["musespark-model-loader"]["spec"]
    loader_volumes = {v["name"]: v for v in loader["volumes"]}
    assert loader_volumes["models"]["persistentVolumeClaim"]["claimName"] == "musespark-models"


def test_the_haproxy_front_carries_deploy_haproxy_cfg():
    with open(HAPROXY_CFG) as f:
        base = f.read()
    cfg = haproxy_configmap()
    head = base[:base.index(REPLICA_MARKER)]
    assert cfg.startswith(head + REPLICA_MARKER), \
        "deploy/kubernetes/haproxy.yaml's haproxy.cfg differs from deploy/haproxy/haproxy.cfg above the replica block"
    block = cfg[len(head):]
    # The replicas come from the headless Service's DNS records, on its port.
    headless = of_kind("Service")["musespark-replicas"]["spec"]
    assert headless["clusterIP"] == "None"
    template = re.search(r'server-template \S+ \d+-\d+ "\$\{MUSESPARK_REPLICAS-([^}]+)\}:(\d+)"', block)
    assert template, block
    assert template.group(1).split(".")[0] == "musespark-replicas"
    assert int(template.group(2)) in [p["port"] for p in headless["ports"]]
    c = of_kind("Deployment")["musespark-haproxy"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["MUSESPARK_REPLICAS"]["value"] == "musespark-replicas.$(POD_NAMESPACE).svc.cluster.local"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert int(env["MUSESPARK_FRONT"]["value"].rsplit(":", 1)[1]) == container_port(c, "http")
    assert int(env["MUSESPARK_STATS"]["value"].rsplit(":", 1)[1]) == container_port(c, "stats")
    assert re.search(r"^\s*monitor-uri /health$", cfg, re.M)
    assert c["readinessProbe"]["httpGet"]["port"] == "stats"
    mount = c["volumeMounts"][0]
    assert mount["mountPath"] == "/usr/local/etc/haproxy/haproxy.cfg" and mount["subPath"] == "haproxy.cfg"


@pytest.mark.parametrize("which", ["deploy/haproxy", "kubernetes"])
def test_haproxy_accepts_the_configuration(which, tmp_path):
    require_haproxy()
    env = dict(os.environ)
    if which == "kubernetes":
        path = tmp_path / "haproxy.cfg"
        path.write_text(haproxy_configmap())
        env.update(MUSESPARK_REPLICAS="musespark-replicas.default.svc.cluster.local", MUSESPARK_FRONT=":8080",
                   MUSESPARK_STATS=":8404")
    else:
        path = HAPROXY_CFG
    p = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[WARNING]" not in p.stdout + p.stderr, p.stdout + p.stderr
