"""Assertions on the broker objects that matter for clustering correctness."""

import re

import pytest

from conftest import (
    HEADLESS,
    NAMESPACE,
    SCENARIOS,
    STS,
    configmap_file,
    container,
    render,
)


def conf_map(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, _, v = line.partition("=")
        out[k.strip()] = v.strip()
    return out


def rabbitmq_conf(r) -> dict[str, str]:
    return conf_map(configmap_file(r, f"{STS}-config", "rabbitmq.conf"))


def test_statefulset_shape(scenario):
    name, r = scenario
    sts = r.get("StatefulSet", STS)
    spec = sts["spec"]
    assert spec["replicas"] == (5 if name.startswith("five") else 3)
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == HEADLESS
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    pod_labels = spec["template"]["metadata"]["labels"]
    for k, v in spec["selector"]["matchLabels"].items():
        assert pod_labels[k] == v
    if name.startswith("five"):
        assert "volumeClaimTemplates" not in spec
    else:
        (pvc,) = spec["volumeClaimTemplates"]
        assert pvc["metadata"]["name"] == "data"
        assert pvc["spec"]["resources"]["requests"]["storage"] == "8Gi"
        mounts = {m["name"]: m["mountPath"] for m in container(spec["template"]["spec"], "rabbitmq")["volumeMounts"]}
        assert mounts["data"] == "/var/lib/rabbitmq"


def test_headless_service_publishes_not_ready_addresses(scenario):
    _, r = scenario
    svc = r.get("Service", HEADLESS)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    sts = r.get("StatefulSet", STS)
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    assert {p["port"] for p in svc["spec"]["ports"]} >= {5672, 15672, 4369, 25672}


def test_peer_discovery_matches_headless_service(scenario):
    _, r = scenario
    conf = rabbitmq_conf(r)
    assert conf["cluster_formation.peer_discovery_backend"] == "rabbit_peer_discovery_k8s"
    assert conf["cluster_formation.k8s.address_type"] == "hostname"
    assert conf["cluster_formation.k8s.service_name"] == HEADLESS
    suffix = f".{HEADLESS}.{NAMESPACE}.svc.cluster.local"
    assert conf["cluster_formation.k8s.hostname_suffix"] == suffix
    assert "rabbitmq_peer_discovery_k8s" in configmap_file(r, f"{STS}-config", "enabled_plugins")
    # node names must use the same DNS names peer discovery builds
    env = {e["name"]: e.get("value") for e in container(r.get("StatefulSet", STS)["spec"]["template"]["spec"], "rabbitmq")["env"]}
    assert env["K8S_SERVICE_NAME"] == HEADLESS
    assert env["RABBITMQ_USE_LONGNAME"] == "true"
    assert env["RABBITMQ_NODENAME"] == "rabbit@$(MY_POD_NAME).$(K8S_SERVICE_NAME).$(MY_POD_NAMESPACE).svc.cluster.local"


def test_peer_discovery_rbac(scenario):
    _, r = scenario
    sts = r.get("StatefulSet", STS)
    sa = sts["spec"]["template"]["spec"]["serviceAccountName"]
    assert r.has("ServiceAccount", sa)
    binding = r.get("RoleBinding", f"{STS}-peer-discovery")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]
    role = r.get("Role", binding["roleRef"]["name"])
    assert any("endpoints" in rule["resources"] and "get" in rule["verbs"] for rule in role["rules"])


def test_broker_config_safety(scenario):
    _, r = scenario
    conf = rabbitmq_conf(r)
    assert conf["cluster_partition_handling"] == "pause_minority"
    assert int(conf["net_ticktime"]) == 15
    assert "rabbitmq_prometheus" in configmap_file(r, f"{STS}-config", "enabled_plugins")
    assert conf["load_definitions"] == "/etc/rabbitmq/definitions.json"


def test_readiness_but_no_liveness_probe(scenario):
    _, r = scenario
    c = container(r.get("StatefulSet", STS)["spec"]["template"]["spec"], "rabbitmq")
    assert "livenessProbe" not in c, "a liveness probe would kill a syncing node"
    assert "startupProbe" not in c
    assert c["readinessProbe"]["tcpSocket"]["port"] == "amqp"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["amqp"] == 5672


def test_readiness_ping_variant():
    r = render({"broker": {"readinessProbe": {"method": "ping"}}})
    c = container(r.get("StatefulSet", STS)["spec"]["template"]["spec"], "rabbitmq")
    assert c["readinessProbe"]["exec"]["command"] == ["rabbitmq-diagnostics", "-q", "ping"]


def test_prestop_waits_before_stopping(scenario):
    name, r = scenario
    pod = r.get("StatefulSet", STS)["spec"]["template"]["spec"]
    c = container(pod, "rabbitmq")
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sh", "/etc/warren/config/prestop.sh"]
    script = configmap_file(r, f"{STS}-config", "prestop.sh")
    assert "rabbitmq-upgrade await_online_quorum_plus_one" in script
    assert "rabbitmq-upgrade drain" in script
    # every 3.x broker waits for mirror sync (mirrored queues may outlive a switch
    # to quorum mode); 4.x has no mirroring and no such command
    tag = SCENARIOS[name].get("broker", {}).get("image", {}).get("tag", "3.13.7")
    assert ("await_online_synchronized_mirror" in script) == tag.startswith("3.")
    timeout = int(re.search(r"^T=(\d+)$", script, re.M).group(1))
    assert pod["terminationGracePeriodSeconds"] > timeout >= 600


def test_pdb_selects_the_brokers(scenario):
    _, r = scenario
    pdb = r.get("PodDisruptionBudget", STS)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    sts = r.get("StatefulSet", STS)
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector and all(pod_labels.get(k) == v for k, v in selector.items())
    # ... and selects nothing else (lb pods, test pod)
    lb_labels = r.get("Deployment", "warren-lb")["spec"]["template"]["metadata"]["labels"]
    assert not all(lb_labels.get(k) == v for k, v in selector.items())


def test_broker_anti_affinity_hard_by_default():
    r = render()
    aff = r.get("StatefulSet", STS)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = aff["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    labels = r.get("StatefulSet", STS)["spec"]["selector"]["matchLabels"]
    assert term["labelSelector"]["matchLabels"] == labels
    soft = render({"broker": {"antiAffinity": "soft"}})
    aff = soft.get("StatefulSet", STS)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in aff


def test_mode_mirrored_applies_ha_policy():
    import json

    r = render(SCENARIOS["mirrored"])
    defs = json.loads(configmap_file(r, f"{STS}-config", "definitions.json.in"))
    (policy,) = defs["policies"]
    assert policy["definition"] == {"ha-mode": "all", "ha-sync-mode": "automatic"}
    assert policy["pattern"] == ".*" and policy["apply-to"] == "queues"
    assert "default_queue_type" not in rabbitmq_conf(r)


def test_mode_quorum_sets_default_queue_type():
    import json

    r = render(SCENARIOS["quorum"])
    assert rabbitmq_conf(r)["default_queue_type"] == "quorum"
    defs = json.loads(configmap_file(r, f"{STS}-config", "definitions.json.in"))
    assert defs["policies"] == []
    assert defs["vhosts"][0]["default_queue_type"] == "quorum"
    sts = r.get("StatefulSet", STS)
    assert container(sts["spec"]["template"]["spec"], "rabbitmq")["image"] == "warren/rabbitmq:4.0.5"


def test_config_change_rolls_the_brokers():
    a = render()
    b = render({"broker": {"config": {"netTicktime": 30}}})
    ann = lambda r: r.get("StatefulSet", STS)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert ann(a) != ann(b)


def test_broker_container_runs_the_chart_start_script():
    r = render()
    pod = r.get("StatefulSet", STS)["spec"]["template"]["spec"]
    c = container(pod, "rabbitmq")
    assert c["command"] == ["sh", "/etc/warren/config/start.sh"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HOME"] == "/var/lib/rabbitmq", "the CLI tools find the cookie in $HOME"
    assert env["RABBITMQ_CONFIG_FILE"] == "/etc/rabbitmq/rabbitmq.conf"
    assert env["RABBITMQ_ENABLED_PLUGINS_FILE"] == "/etc/rabbitmq/enabled_plugins"
    # freeze drills: beam.smp must not be PID 1 of its namespace
    assert pod["shareProcessNamespace"] is True
    assert "shareProcessNamespace" not in render({"broker": {"shareProcessNamespace": False}}).get(
        "StatefulSet", STS
    )["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "limit,expected",
    [("2Gi", 2 * 1024**3), ("512Mi", 512 * 1024**2), ("3G", 3 * 10**9), ("1.5Gi", int(1.5 * 1024**3))],
)
def test_memory_watermark_is_relative_to_the_container_limit(limit, expected):
    r = render({"broker": {"resources": {"limits": {"memory": limit}}}})
    assert int(rabbitmq_conf(r)["total_memory_available_override_value"]) == expected


def test_no_memory_override_without_a_limit():
    r = render({"broker": {"resources": {"limits": None}}})
    assert "total_memory_available_override_value" not in rabbitmq_conf(r)
