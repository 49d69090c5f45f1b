"""Shared helpers for the warren chart tests.

The chart is rendered and linted offline with the real Helm engine embedded in the
PyPI package `helm-python-sdk` (module `helm_python`, Helm v4); objects are validated
with `kubernetes-validate`. No cluster is involved.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

try:
    import helm_python as helm
except ImportError as exc:  # pragma: no cover - environment problem, say so clearly
    raise ImportError(
        "helm tests need the PyPI package helm-python-sdk (module helm_python): "
        "pip install helm-python-sdk"
    ) from exc

helm.disable_logging()

# kubernetes-validate re-reads and re-parses its 1 MB schema definitions for every
# object; the files never change during a run, so memoise the reader (4x faster).
import functools  # noqa: E402

import kubernetes_validate.utils as _kv_utils  # noqa: E402

_kv_utils.schema_contents = functools.lru_cache(maxsize=None)(_kv_utils.schema_contents)

CHART = Path(__file__).resolve().parent.parent / "warren"
# The suites' shared helpers (binary, ...): scripts/lib/warren_testkit.py.
sys.path.insert(0, str(CHART.parent.parent / "scripts" / "lib"))
RELEASE = "warren"
NAMESPACE = "messaging"
KUBE_VERSION = "1.29.0"

STS = "warren-rabbitmq"
HEADLESS = "warren-rabbitmq-headless"
LB = "warren-lb"
SECRET = "warren-rabbitmq-secret"

# Documented scenarios (docs/helm.md): name -> values overrides.
SCENARIOS: dict[str, dict] = {
    "default": {},
    "mirrored": {"mode": "mirrored", "broker": {"image": {"tag": "3.13.7"}}},
    "quorum": {"mode": "quorum", "broker": {"image": {"tag": "4.0.5"}}},
    "quorum-3.13": {"mode": "quorum"},
    "vip": {
        "vip": {
            "enabled": True,
            "virtualIPs": ["192.0.2.10/24"],
            "nodeSelector": {"warren.io/vip": "true"},
        }
    },
    "loadbalancer": {
        "lb": {
            "service": {
                "type": "LoadBalancer",
                "loadBalancerSourceRanges": ["10.0.0.0/8"],
                "externalTrafficPolicy": "Local",
            }
        }
    },
    "existing-secret": {"broker": {"existingSecret": "my-rabbit-secret"}},
    "servicemonitor": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "networkPolicy": {"metricsNamespaces": ["monitoring"]},
    },
    "five-nodes-no-persistence": {
        "broker": {"replicas": 5, "persistence": {"enabled": False}, "antiAffinity": "soft"}
    },
    "allowed-namespaces": {"networkPolicy": {"allowedNamespaces": ["shop", "billing"]}},
}


class Rendered:
    """One offline render: template path -> manifest, plus parsed objects."""

    def __init__(self, manifests: dict[str, str]):
        self.manifests = manifests
        self.notes = ""
        self.objects: list[dict] = []
        self.by_template: dict[str, list[dict]] = {}
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            docs = [d for d in yaml.safe_load_all(text) if d]
            self.by_template[path] = docs
            self.objects.extend(docs)

    def all(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def has(self, kind: str, name: str) -> bool:
        return any(o["metadata"]["name"] == name for o in self.all(kind))


_cache: dict[str, Rendered] = {}


def render(values: dict | None = None, chart: Path = CHART, **opts) -> Rendered:
    key = json.dumps([str(chart), values, opts], sort_keys=True)
    if key not in _cache:
        with helm.Chart.load(chart) as c:
            manifests = c.render(
                copy.deepcopy(values) if values else None,
                name=RELEASE,
                namespace=NAMESPACE,
                **opts,
            )
        _cache[key] = Rendered(manifests)
    return _cache[key]


def render_error(values: dict, chart: Path = CHART) -> str:
    """Render expecting failure; return the engine's message."""
    with helm.Chart.load(chart) as c:
        with pytest.raises(helm.HelmError) as info:
            c.render(values, name=RELEASE, namespace=NAMESPACE)
    return str(info.value)


def lint(values: dict | None = None) -> dict:
    return helm.lint(
        os.fspath(CHART),
        values,
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}",
    )


def container(pod_spec: dict, name: str, init: bool = False) -> dict:
    key = "initContainers" if init else "containers"
    found = [c for c in pod_spec.get(key, []) if c["name"] == name]
    assert len(found) == 1, f"container {name} not found in {key}"
    return found[0]


def configmap_file(r: Rendered, cm: str, key: str) -> str:
    return r.get("ConfigMap", cm)["data"][key]


@pytest.fixture(params=sorted(SCENARIOS), ids=sorted(SCENARIOS))
def scenario(request) -> tuple[str, Rendered]:
    return request.param, render(SCENARIOS[request.param])
