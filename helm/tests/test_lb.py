"""warren-lb: Deployment, Service and its TOML config (the team's config contract)."""

import subprocess
import tomllib

import pytest

from conftest import HEADLESS, LB, NAMESPACE, SCENARIOS, STS, configmap_file, container, render
from warren_testkit import binary as warren_binary


def lb_config(r) -> dict:
    return tomllib.loads(configmap_file(r, f"{LB}-config", "warren-lb.toml"))


def test_lb_config_parses_and_lists_the_brokers(scenario):
    name, r = scenario
    cfg = lb_config(r)
    n = 5 if name.startswith("five") else 3
    (backend,) = cfg["backend"]
    servers = backend["server"]
    assert [s["address"] for s in servers] == [
        f"{STS}-{i}.{HEADLESS}.{NAMESPACE}.svc.cluster.local:5672" for i in range(n)
    ]
    assert [s["name"] for s in servers] == [f"{STS}-{i}" for i in range(n)]
    assert [s["role"] for s in servers] == ["primary"] + ["backup"] * (n - 1)
    (frontend,) = cfg["frontend"]
    assert frontend == {"name": "amqp", "bind": "0.0.0.0:5672", "backend": "rabbitmq", "maxconn": 4096,
                        "timeout_first_byte": "5s"}


def test_lb_config_matches_the_contract_keys():
    cfg = lb_config(render())
    assert set(cfg) == {"admin", "frontend", "backend"}
    (backend,) = cfg["backend"]
    assert set(backend) == {
        "name", "balance", "allbackups", "redispatch", "observe", "on_error",
        "on_marked_down", "on_marked_up", "failback", "timeout_connect", "timeout_idle",
        "check", "server",
    }
    assert backend["on_marked_down"] == "shutdown-sessions"
    assert backend["redispatch"] is True and backend["observe"] == "layer4"
    check = backend["check"]
    assert check["type"] == "rabbitmq"
    assert check["port"] == 15672
    assert check["username"] == "admin"
    assert "password" not in check
    for s in backend["server"]:
        assert set(s) == {"name", "address", "role", "weight", "maxconn"}


def test_lb_password_and_admin_token_files_are_mounted_from_the_secret():
    r = render()
    cfg = lb_config(r)
    pod = r.get("Deployment", LB)["spec"]["template"]["spec"]
    c = container(pod, "warren-lb")
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "secrets"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == "secrets"]
    files = {i["key"]: f"{mount['mountPath']}/{i['path']}" for i in vol["secret"]["items"]}
    assert files == {
        "admin-password": cfg["backend"][0]["check"]["password_file"],
        "lb-admin-token": cfg["admin"]["token_file"],
    }
    assert vol["secret"]["secretName"] == "warren-rabbitmq-secret"
    cfg_mount = [m for m in c["volumeMounts"] if m["name"] == "config"][0]["mountPath"]
    assert c["args"] == ["--config", f"{cfg_mount}/warren-lb.toml"]


def test_all_primary_roles():
    cfg = lb_config(render({"lb": {"serverRoles": "all-primary", "balance": "roundrobin"}}))
    assert {s["role"] for s in cfg["backend"][0]["server"]} == {"primary"}
    assert cfg["backend"][0]["balance"] == "roundrobin"


def test_lb_deployment_two_replicas_with_anti_affinity():
    r = render()
    d = r.get("Deployment", LB)
    assert d["spec"]["replicas"] == 2
    aff = d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = aff["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
    assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hard = render({"lb": {"antiAffinity": "hard"}}).get("Deployment", LB)
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]


def test_lb_service_cluster_ip_by_default():
    svc = render().get("Service", LB)
    assert svc["spec"]["type"] == "ClusterIP"
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"amqp": 5672, "admin": 8404}
    d = render().get("Deployment", LB)
    assert svc["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]
    assert "loadBalancerSourceRanges" not in svc["spec"]


def test_lb_service_load_balancer():
    svc = render(SCENARIOS["loadbalancer"]).get("Service", LB)
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert svc["spec"]["externalTrafficPolicy"] == "Local"


def test_lb_disabled_renders_no_lb_objects():
    r = render({"lb": {"enabled": False}})
    assert not any("lb" == o["metadata"]["labels"]["app.kubernetes.io/component"] for o in r.objects)
    assert not r.all("Pod"), "the drill smoke goes through the lb"
    assert r.has("StatefulSet", STS)


def test_helm_test_hook_runs_a_drill_through_the_lb(scenario):
    name, r = scenario
    pod = r.get("Pod", "warren-drill-smoke")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    args = container(pod["spec"], "warren-drill")["args"]
    assert args[0] == "run"
    assert args[args.index("--endpoint") + 1] == f"{LB}.{NAMESPACE}.svc.cluster.local:5672"
    assert args[args.index("--fault") + 1] == "none"
    assert args[args.index("--duration") + 1] == "10s"
    qt = "quorum" if SCENARIOS[name].get("mode") == "quorum" else "classic"
    assert args[args.index("--queue-type") + 1] == qt


def check_config(tmp_path, text, files=()):
    """`warren-lb check-config` on a rendered warren-lb.toml whose mounted secrets
    (and `files`: (path in the pod, local file) pairs) are replaced by local files.
    A missing warren-lb build fails the test (it must not pass as a skipped check);
    scripts/test builds it and exports WARREN_LB_BIN."""
    binary = warren_binary("WARREN_LB_BIN", "warren-lb")
    pw, token = tmp_path / "admin_password", tmp_path / "lb_admin_token"
    pw.write_text("secret-password")
    token.write_text("generated-admin-token-0123456789")
    for path, local in (("/run/secrets/warren/admin_password", pw),
                        ("/run/secrets/warren/lb_admin_token", token), *files):
        text = text.replace(path, str(local))
    cfg = tmp_path / "warren-lb.toml"
    cfg.write_text(text)
    return subprocess.run([binary, "check-config", str(cfg)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ["default", "five-nodes-no-persistence", "loadbalancer"])
def test_lb_config_accepted_by_warren_lb_check_config(tmp_path, name):
    """Cross-check against the real parser: `warren-lb check-config FILE`."""
    p = check_config(tmp_path, configmap_file(render(SCENARIOS[name]), f"{LB}-config", "warren-lb.toml"))
    assert p.returncode == 0, f"warren-lb rejected the chart's config:\n{p.stdout}\n{p.stderr}"
