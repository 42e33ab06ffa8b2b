"""deploy/kubernetes: the base and the example overlay render with `kubectl kustomize`, every
object validates against its schema, and the objects say what the project promises (sharding,
hardening, probes, secrets as files, Prometheus-only ingress, the rules from alerts/).

Kubernetes' kinds are checked with kubernetes-validate (strict: unknown fields fail); the
Prometheus Operator's with the JSON schemas in deploy/kubernetes/schemas/ (their source is
noted there), read as strictly. kubectl must be on PATH (scripts/test installs Debian's
kubernetes-client): the test fails, never skips, without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache

import jsonschema
import kubernetes_validate
import pytest
import yaml
from helpers import ROOT, rule_groups

from exporter.config import load_config

KUBE = ROOT / "deploy" / "kubernetes"
SCHEMAS = KUBE / "schemas"
TREES = {"base": KUBE / "base", "example": KUBE / "overlays" / "example"}
# The oldest Kubernetes these objects need (policy/v1 PDB, seccompProfile) and the newest known.
KUBERNETES_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
SECRETS_DIR = "/run/secrets/bybit-dcp-exporter"
NAME = "bybit-dcp-exporter"


@cache
def render(tree: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl not found: scripts/test installs it (or says how)")
    result = subprocess.run([kubectl, "kustomize", str(TREES[tree])], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (
        f"{result.stderr}\n(kubectl reads this kustomize syntax from 1.21 on; scripts/test checks)"
    )
    # Current kustomize syntax (resources, patches): no deprecation warning, nor any other.
    assert result.stderr == "", result.stderr
    return tuple(yaml.safe_load_all(result.stdout))


def by_kind(tree: str, kind: str) -> dict:
    (obj,) = [o for o in render(tree) if o["kind"] == kind]
    return obj


def _strict(schema: object) -> object:
    """An object schema that lists its properties accepts no others (kubectl --validate=strict)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


@cache
def operator_validator(kind: str) -> jsonschema.Draft202012Validator:
    # Not check_schema: a pattern or two is Go's regex syntax (`(?i)` mid-pattern), used only if present.
    schema = _strict(json.loads((SCHEMAS / f"monitoring.coreos.com_v1_{kind.lower()}.json").read_text()))
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("tree", TREES)
def test_renders_every_object_and_each_validates(tree):
    objects = render(tree)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "ConfigMap",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Service",
            "ServiceMonitor",
            "StatefulSet",
        ]
    )
    for obj in objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            operator_validator(obj["kind"]).validate(obj)
        else:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)


def test_the_schemas_catch_a_misspelt_field():
    """The checks above could fail: a typo in a monitor or a pod is refused."""
    monitor = json.loads(json.dumps(by_kind("base", "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        operator_validator("ServiceMonitor").validate(monitor)
    statefulset = json.loads(json.dumps(by_kind("base", "StatefulSet")))
    statefulset["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("tree", TREES)
def test_one_replica_per_shard(tree):
    spec = by_kind(tree, "StatefulSet")["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    (count,) = [int(a.split("=", 1)[1]) for a in container["args"] if a.startswith("--shard.count=")]
    assert spec["replicas"] == count, "replicas and --shard.count must agree"
    # The index comes from the pod's ordinal (its host name), not a flag.
    assert not any(a.startswith("--shard.index") for a in container["args"])
    assert by_kind(tree, "Service")["spec"]["clusterIP"] == "None"  # every shard is scraped
    assert by_kind("example", "StatefulSet")["spec"]["replicas"] == 3


@pytest.mark.parametrize("tree", TREES)
def test_the_pod_is_hardened_and_probed(tree):
    pod = by_kind(tree, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert container["ports"] == [{"name": "http-metrics", "containerPort": 9842, "protocol": "TCP"}]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and "memory" in container["resources"]["limits"]
    assert "env" not in container and "envFrom" not in container, "secrets come as files"


@pytest.mark.parametrize("tree", TREES)
def test_config_from_the_configmap_and_secrets_from_the_secret_as_files(tree, tmp_path):
    pod = by_kind(tree, "StatefulSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    configmap = by_kind(tree, "ConfigMap")
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]  # the generated, hashed name
    assert mounts["config"]["mountPath"] == "/etc/bybit-dcp-exporter"
    assert volumes["secrets"]["secret"]["secretName"] == "bybit-dcp-exporter-api"
    assert volumes["secrets"]["secret"]["defaultMode"] == 0o440
    assert mounts["secrets"]["mountPath"] == SECRETS_DIR and mounts["secrets"]["readOnly"] is True

    # The shipped config is valid for the exporter once the Secret's files exist.
    text = configmap["data"]["config.yml"]
    accounts = yaml.safe_load(text)["accounts"]
    for account in accounts:
        (field,) = [f for f in ("api_secret_file", "rsa_private_key_file") if f in account]
        assert account[field] == f"{SECRETS_DIR}/{account['name']}"
        secret = tmp_path / account["name"]
        secret.write_text(_rsa_pem() if field == "rsa_private_key_file" else "hmac-secret")
    config_file = tmp_path / "config.yml"
    config_file.write_text(text.replace(SECRETS_DIR, str(tmp_path)))
    config = load_config(str(config_file), env={})
    assert [a.name for a in config.accounts] == [a["name"] for a in accounts]


def _rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize("tree", TREES)
def test_network_policy_lets_in_prometheus_only_and_out_dns_and_https(tree):
    spec = by_kind(tree, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": 9842, "protocol": "TCP"}]
    (peer,) = ingress["from"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    ports = sorted((p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"])
    assert ports == [(53, "TCP"), (53, "UDP"), (443, "TCP")]


def test_the_monitors_select_the_exporter_and_the_overlay_labels_them_for_prometheus():
    for tree in TREES:
        monitor = by_kind(tree, "ServiceMonitor")
        service = by_kind(tree, "Service")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
        assert by_kind(tree, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert by_kind("example", kind)["metadata"]["labels"]["release"] == "prometheus"
        assert by_kind("example", kind)["metadata"]["namespace"] == "bybit-dcp"


def test_the_prometheus_rule_is_the_alert_rules():
    """One source of truth: the generated file is current and carries exactly alerts/'s groups."""
    result = subprocess.run(
        [sys.executable, str(KUBE / "generate.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for tree in TREES:
        assert by_kind(tree, "PrometheusRule")["spec"]["groups"] == rule_groups()


def test_the_image_name_matches_the_dockerfile_user():
    """The pod's numeric user is the image's (Dockerfile USER)."""
    user = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    assert user == ["65532:65532"]
    assert by_kind("base", "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"].startswith(NAME)
