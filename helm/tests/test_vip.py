"""warren-vip DaemonSet: off by default; host network, NET_ADMIN + NET_RAW only."""

import subprocess
import tomllib

from conftest import LB, NAMESPACE, SCENARIOS, configmap_file, container, render
from warren_testkit import binary as warren_binary


def test_vip_off_by_default():
    r = render()
    assert not r.all("DaemonSet")
    assert not r.has("ConfigMap", "warren-vip-config")
    assert "externalIPs" not in r.get("Service", LB)["spec"]


def test_vip_daemonset_least_privilege():
    r = render(SCENARIOS["vip"])
    ds = r.get("DaemonSet", "warren-vip")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"warren.io/vip": "true"}
    sc = container(pod, "warren-vip")["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True


def test_vip_config_toml():
    r = render(SCENARIOS["vip"])
    cfg = tomllib.loads(configmap_file(r, "warren-vip-config", "warren-vip.toml"))
    (inst,) = cfg["instance"]
    assert inst["interface"] == "eth0"
    assert inst["virtual_router_id"] == 51
    assert inst["priority"] == 100
    assert inst["advert_int"] == 1
    assert inst["version"] == 3
    assert inst["virtual_ipaddress"] == ["192.0.2.10/24"]
    (track,) = inst["track"]
    assert track["type"] == "warren-lb"
    assert track["address"] == f"{LB}.{NAMESPACE}.svc.cluster.local:8404"


def test_vip_config_accepted_by_warren_vip_check_config(tmp_path):
    """Test with what we ship: the bare-metal VIP scenario's rendered config
    goes through the real parser, `warren-vip check-config FILE`. (Until
    warren-vip took HOST:PORT tracker addresses, it refused the Service name
    the chart renders.) A missing build fails the test; scripts/test builds it
    and exports WARREN_VIP_BIN."""
    binary = warren_binary("WARREN_VIP_BIN", "warren-vip")
    cfg = tmp_path / "warren-vip.toml"
    cfg.write_text(configmap_file(render(SCENARIOS["vip"]), "warren-vip-config", "warren-vip.toml"))
    p = subprocess.run([binary, "check-config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"warren-vip rejected the chart's config:\n{p.stdout}\n{p.stderr}"


def test_vip_address_routed_to_lb_service():
    svc = render(SCENARIOS["vip"]).get("Service", LB)
    assert svc["spec"]["externalIPs"] == ["192.0.2.10"]


def test_vip_fractional_advert_and_v2():
    r = render({"vip": {"enabled": True, "virtualIPs": ["192.0.2.10/24", "192.0.2.11/24"], "advertInt": 0.1, "version": 2}})
    inst = tomllib.loads(configmap_file(r, "warren-vip-config", "warren-vip.toml"))["instance"][0]
    assert inst["advert_int"] == 0.1 and inst["version"] == 2
    assert inst["virtual_ipaddress"] == ["192.0.2.10/24", "192.0.2.11/24"]
