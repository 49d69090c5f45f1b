"""NetworkPolicy: AMQP from allowed namespaces; Erlang distribution only between brokers."""

from conftest import LB, SCENARIOS, STS, render


def ports(rule):
    return sorted(p["port"] for p in rule["ports"])


def selects(selector_labels: dict, pod_labels: dict) -> bool:
    return all(pod_labels.get(k) == v for k, v in selector_labels.items())


def test_broker_policy_rules():
    r = render(SCENARIOS["allowed-namespaces"])
    np = r.get("NetworkPolicy", STS)
    broker_labels = r.get("StatefulSet", STS)["spec"]["template"]["metadata"]["labels"]
    lb_labels = r.get("Deployment", LB)["spec"]["template"]["metadata"]["labels"]
    test_labels = r.get("Pod", "warren-drill-smoke")["metadata"]["labels"]
    assert selects(np["spec"]["podSelector"]["matchLabels"], broker_labels)
    assert np["spec"]["policyTypes"] == ["Ingress"]
    rules = np["spec"]["ingress"]

    # Erlang distribution + epmd: exactly one rule, peers = broker pods only.
    dist = [rule for rule in rules if {4369, 25672} & set(ports(rule))]
    assert len(dist) == 1 and ports(dist[0]) == [4369, 25672]
    (peer,) = dist[0]["from"]
    assert set(peer) == {"podSelector"}
    assert selects(peer["podSelector"]["matchLabels"], broker_labels)
    assert not selects(peer["podSelector"]["matchLabels"], lb_labels)

    # Management API only for lb (+ the helm test pod).
    mgmt = [rule for rule in rules if 15672 in ports(rule)]
    assert len(mgmt) == 1
    sources = [f["podSelector"]["matchLabels"] for f in mgmt[0]["from"]]
    assert any(selects(s, lb_labels) for s in sources)
    assert any(selects(s, test_labels) for s in sources)
    assert not any(selects(s, broker_labels) for s in sources)

    # AMQP from the release namespace and the allowed namespaces.
    amqp = [rule for rule in rules if ports(rule) == [5672]]
    assert len(amqp) == 1
    ns = sorted(f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for f in amqp[0]["from"] if "namespaceSelector" in f)
    assert ns == ["billing", "shop"]
    # every rule names its ports: nothing is opened wholesale
    assert all(rule.get("ports") for rule in rules)
    assert all(rule.get("from") for rule in rules)


def test_metrics_port_only_when_asked():
    assert not any(15692 in ports(rule) for rule in render().get("NetworkPolicy", STS)["spec"]["ingress"])
    r = render(SCENARIOS["servicemonitor"])
    (rule,) = [rule for rule in r.get("NetworkPolicy", STS)["spec"]["ingress"] if 15692 in ports(rule)]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_lb_policy_internal_by_default():
    np = render().get("NetworkPolicy", LB)
    (rule,) = np["spec"]["ingress"]
    assert ports(rule) == [5672]
    assert rule["from"] == [{"podSelector": {}}]


def test_lb_policy_open_for_external_clients():
    for name in ("loadbalancer", "vip"):
        np = render(SCENARIOS[name]).get("NetworkPolicy", LB)
        amqp = [rule for rule in np["spec"]["ingress"] if ports(rule) == [5672]]
        assert amqp and "from" not in amqp[0], name


def test_network_policy_can_be_disabled():
    assert not render({"networkPolicy": {"enabled": False}}).all("NetworkPolicy")
