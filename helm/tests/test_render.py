"""Render every documented scenario offline and validate every object against the
Kubernetes 1.29 schemas (kubernetes-validate, strict: unknown fields are errors)."""

import kubernetes_validate
import pytest

from conftest import KUBE_VERSION, NAMESPACE, RELEASE, render

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)


def validate_service_monitor(obj):
    """No upstream schema for the prometheus-operator CRD: check its required shape."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    spec = obj["spec"]
    assert set(spec) <= {"namespaceSelector", "selector", "endpoints", "jobLabel"}
    assert spec["selector"]["matchExpressions"]
    for ep in spec["endpoints"]:
        assert set(ep) <= {"port", "path", "interval", "scheme", "tlsConfig"}
        assert ep["port"] and ep["path"].startswith("/")
        if "tlsConfig" in ep:
            assert ep["scheme"] == "https"
            assert set(ep["tlsConfig"]) <= {"ca", "serverName", "insecureSkipVerify"}


def test_every_object_validates(scenario):
    name, r = scenario
    assert r.objects, f"scenario {name} rendered nothing"
    for obj in r.objects:
        if obj["kind"] == "ServiceMonitor":
            validate_service_monitor(obj)
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} invalid: {e}")


def test_standard_labels_and_namespace(scenario):
    name, r = scenario
    for obj in r.objects:
        labels = obj["metadata"].get("labels", {})
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{name}: {obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_one_resource_per_template_file(scenario):
    name, r = scenario
    for path, docs in r.by_template.items():
        assert len(docs) <= 1, f"{name}: {path} renders {len(docs)} objects"


def test_names_are_unique(scenario):
    _, r = scenario
    keys = [(o["kind"], o["metadata"]["name"]) for o in r.objects]
    assert len(keys) == len(set(keys))


def test_default_object_set():
    r = render()
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in r.objects)
    assert kinds == sorted(
        [
            ("ConfigMap", "warren-rabbitmq-config"),
            ("ConfigMap", "warren-lb-config"),
            ("Deployment", "warren-lb"),
            ("NetworkPolicy", "warren-rabbitmq"),
            ("NetworkPolicy", "warren-lb"),
            ("Pod", "warren-drill-smoke"),
            ("PodDisruptionBudget", "warren-rabbitmq"),
            ("PodDisruptionBudget", "warren-lb"),
            ("Role", "warren-rabbitmq-peer-discovery"),
            ("RoleBinding", "warren-rabbitmq-peer-discovery"),
            ("Secret", "warren-rabbitmq-secret"),
            ("Service", "warren-rabbitmq-headless"),
            ("Service", "warren-lb"),
            ("ServiceAccount", "warren-rabbitmq"),
            ("StatefulSet", "warren-rabbitmq"),
        ]
    )
    # vip and ServiceMonitor are off by default
    assert not r.all("DaemonSet") and not r.all("ServiceMonitor")


def test_workloads_run_as_non_root(scenario):
    name, r = scenario
    for obj in r.all("StatefulSet") + r.all("Deployment") + r.all("Pod"):
        spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, obj["metadata"]["name"]
        assert spec["securityContext"]["runAsUser"] != 0
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "add" not in sc["capabilities"]
            assert "resources" in c and c["resources"]["limits"], c["name"]


def test_notes_explain_connect_and_drill(scenario):
    name, r = scenario
    assert "helm test" in r.notes
    assert "warren-lb.messaging.svc.cluster.local:5672" in r.notes
    assert "delete pod warren-rabbitmq-0" in r.notes
