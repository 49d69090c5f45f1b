"""tls.enabled / tls.only: brokers with AMQPS, management HTTPS and Prometheus TLS,
certificates from cert-manager or an existing Secret, the lb's amqps passthrough
frontend, and the rotation watcher (tls-watch.sh) run for real under sh."""

import os
import shutil
import subprocess
import time

import kubernetes_validate
import pytest

from conftest import (
    CHART, HEADLESS, KUBE_VERSION, LB, NAMESPACE, STS, configmap_file, container, lint, render,
    render_error,
)
from test_broker import conf_map
from test_lb import check_config, lb_config
from test_rabbitmq_conf import plugins_dir, run_check, write_conf
from test_render import validate_service_monitor
from warren_testkit import poll

ISSUER = {"name": "warren-ca", "kind": "ClusterIssuer"}
TLS_DIR = "/etc/warren/tls"
# Documented TLS scenarios (docs/helm.md, TLS): name -> values.
TLS_SCENARIOS = {
    "tls-cert-manager": {"tls": {"enabled": True, "certManager": {"issuerRef": ISSUER}}},
    "tls-existing-secret": {"tls": {"enabled": True, "existingSecret": "my-rabbit-tls"}},
    "tls-only": {
        "tls": {"enabled": True, "only": True, "certManager": {"issuerRef": ISSUER}},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "networkPolicy": {"metricsNamespaces": ["monitoring"]},
    },
    "tls-only-4.0": {
        "mode": "quorum",
        "broker": {"image": {"tag": "4.0.5"}},
        "tls": {"enabled": True, "only": True, "existingSecret": "my-rabbit-tls"},
    },
}
PODS = [f"{STS}-{i}.{HEADLESS}.{NAMESPACE}.svc.cluster.local" for i in range(3)]


def pod_spec(r):
    return r.get("StatefulSet", STS)["spec"]["template"]["spec"]


def ports(rule):
    return sorted(p["port"] for p in rule["ports"])


def validate_certificate(obj):
    """No upstream schema for cert-manager's CRD: check the cert-manager.io/v1 fields used."""
    assert obj["apiVersion"] == "cert-manager.io/v1"
    spec = obj["spec"]
    assert set(spec) <= {"secretName", "issuerRef", "duration", "renewBefore", "privateKey",
                         "usages", "dnsNames", "ipAddresses", "commonName"}
    assert set(spec["issuerRef"]) == {"name", "kind", "group"}
    assert set(spec["privateKey"]) <= {"algorithm", "size", "rotationPolicy", "encoding"}
    assert spec["secretName"] and spec["dnsNames"]


@pytest.mark.parametrize("name", sorted(TLS_SCENARIOS))
def test_tls_scenarios_validate_and_lint(name):
    r = render(TLS_SCENARIOS[name])
    for obj in r.objects:
        if obj["kind"] == "ServiceMonitor":
            validate_service_monitor(obj)
        elif obj["kind"] == "Certificate":
            validate_certificate(obj)
        else:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    report = lint(TLS_SCENARIOS[name])
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_cert_manager_certificate_names_every_pod_and_service():
    r = render(TLS_SCENARIOS["tls-cert-manager"])
    (cert,) = r.all("Certificate")
    spec = cert["spec"]
    assert spec["issuerRef"] == {"name": "warren-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert spec["dnsNames"] == PODS + [
        f"{HEADLESS}.{NAMESPACE}.svc.cluster.local", f"{HEADLESS}.{NAMESPACE}.svc", HEADLESS,
        f"{LB}.{NAMESPACE}.svc.cluster.local", f"{LB}.{NAMESPACE}.svc", LB,
    ]
    assert "ipAddresses" not in spec
    assert spec["privateKey"]["rotationPolicy"] == "Always"
    assert {"server auth", "client auth"} <= set(spec["usages"])
    # the Secret cert-manager writes is the one the brokers mount
    (vol,) = [v for v in pod_spec(r)["volumes"] if v["name"] == "tls"]
    assert vol["secret"]["secretName"] == spec["secretName"] == f"{STS}-tls"
    # an Issuer in the namespace by default
    plain = render({"tls": {"enabled": True, "certManager": {"issuerRef": {"name": "ca"}}}})
    assert plain.all("Certificate")[0]["spec"]["issuerRef"]["kind"] == "Issuer"


def test_certificate_follows_replicas_vip_and_extra_names():
    r = render({
        "broker": {"replicas": 5},
        "vip": {"enabled": True, "virtualIPs": ["192.0.2.10/24"]},
        "tls": {"enabled": True, "certManager": {"issuerRef": ISSUER, "extraDnsNames": ["mq.example.com"]}},
    })
    spec = r.all("Certificate")[0]["spec"]
    assert [n for n in spec["dnsNames"] if n.startswith(f"{STS}-") and n.count(".") == 5] == [
        f"{STS}-{i}.{HEADLESS}.{NAMESPACE}.svc.cluster.local" for i in range(5)]
    assert spec["dnsNames"][-1] == "mq.example.com"
    assert spec["ipAddresses"] == ["192.0.2.10"]


def test_existing_secret_is_mounted_whole_and_no_certificate():
    r = render(TLS_SCENARIOS["tls-existing-secret"])
    assert not r.all("Certificate")
    spec = pod_spec(r)
    (vol,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert vol["secret"]["secretName"] == "my-rabbit-tls"
    assert "items" not in vol["secret"], "the whole Secret: tls.crt, tls.key and ca.crt"
    main = container(spec, "rabbitmq")
    (mount,) = [m for m in main["volumeMounts"] if m["name"] == "tls"]
    assert mount["mountPath"] == TLS_DIR and mount["readOnly"] is True


@pytest.mark.parametrize("name", sorted(TLS_SCENARIOS))
def test_no_subpath_mounts_so_rotation_reaches_the_pods(name):
    """A subPath mount is never updated by the kubelet (cluster-operator#506/#555)."""
    r = render(TLS_SCENARIOS[name])
    for obj in r.all("StatefulSet") + r.all("Deployment") + r.all("Pod"):
        spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
        for c in spec["containers"] + spec.get("initContainers", []):
            assert all("subPath" not in m for m in c.get("volumeMounts", [])), (obj["metadata"]["name"], c["name"])


@pytest.mark.parametrize("values,message", [
    ({"tls": {"enabled": True}},
     "tls.enabled=true needs the brokers' certificate from exactly one of: tls.certManager.issuerRef"),
    ({"tls": {"enabled": True, "existingSecret": "s", "certManager": {"issuerRef": ISSUER}}},
     'tls: both tls.certManager.issuerRef ({"kind":"ClusterIssuer","name":"warren-ca"}) and tls.existingSecret ("s") '
     "are set: the brokers' certificate must come from exactly one of them"),
    ({"tls": {"enabled": True, "certManager": {"issuerRef": {"kind": "Issuer"}}}},
     "tls.certManager.issuerRef needs a name"),
    ({"tls": {"only": True}}, "tls.only=true needs tls.enabled=true"),
])
def test_certificate_source_is_exactly_one(tmp_path_factory, values, message):
    assert message in render_error(values)
    # the same refusal without the schema (--skip-schema-validation)
    chart = tmp_path_factory.mktemp("noschema") / "warren"
    shutil.copytree(CHART, chart)
    (chart / "values.schema.json").unlink()
    assert message in render_error(values, chart=chart)


@pytest.mark.parametrize("values,message", [
    ({"tls": {"enabled": "yes"}}, "at '/tls/enabled'"),
    ({"tls": {"certManager": {"issuerRef": {"name": "ca", "kind": "Vault"}}}},
     "at '/tls/certManager/issuerRef/kind': value must be one of 'Issuer', 'ClusterIssuer'"),
    ({"tls": {"existingSecrets": "x"}}, "additional properties 'existingSecrets' not allowed"),
    ({"tls": {"certManager": {"duration": "90 days"}}}, "at '/tls/certManager/duration'"),
])
def test_schema_rejects_bad_tls_values(values, message):
    assert message in render_error(values)


def test_rabbitmq_conf_plain_and_tls():
    conf = conf_map(configmap_file(render(TLS_SCENARIOS["tls-cert-manager"]), f"{STS}-config", "rabbitmq.conf"))
    assert conf["listeners.tcp.default"] == "5672" and conf["management.tcp.port"] == "15672"
    assert conf["listeners.ssl.default"] == "5671"
    assert conf["management.ssl.port"] == "15671"
    assert conf["prometheus.ssl.port"] == "15691"
    assert conf["ssl_options.verify"] == "verify_peer"
    assert conf["ssl_options.fail_if_no_peer_cert"] == "false"
    for prefix in ("ssl_options", "management.ssl", "prometheus.ssl"):
        assert conf[f"{prefix}.cacertfile"] == f"{TLS_DIR}/ca.crt"
        assert conf[f"{prefix}.certfile"] == f"{TLS_DIR}/tls.crt"
        assert conf[f"{prefix}.keyfile"] == f"{TLS_DIR}/tls.key"


@pytest.mark.parametrize("name", ["tls-only", "tls-only-4.0"])
def test_rabbitmq_conf_tls_only_has_no_plain_listener(name):
    conf = conf_map(configmap_file(render(TLS_SCENARIOS[name]), f"{STS}-config", "rabbitmq.conf"))
    assert conf["listeners.tcp"] == "none"
    assert not {"listeners.tcp.default", "management.tcp.port", "prometheus.tcp.port"} & set(conf)
    assert conf["listeners.ssl.default"] == "5671"


def make_pki(d, names=("localhost",), days=30, ca=None):
    """A server certificate for `names` and its CA, with openssl: a new CA, or the one
    in directory `ca` (ca.crt, ca.key), as a renewal by the same issuer."""
    d.mkdir(parents=True, exist_ok=True)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    if ca:
        for name in ("ca.crt", "ca.key"):
            shutil.copy(ca / name, d / name)
    else:
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", str(days), "-subj", "/CN=warren test CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(d / "tls.key"), "-out", str(d / "tls.csr"), "-subj", f"/CN={names[0]}")
    ext = d / "san.ext"
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")
    ossl("x509", "-req", "-in", str(d / "tls.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
         "-CAcreateserial", "-out", str(d / "tls.crt"), "-days", str(days), "-extfile", str(ext))
    return d


def test_rendered_tls_rabbitmq_conf_is_valid_for_rabbitmq(tmp_path):
    """3.13 and 4.0 renders, plain+TLS and TLS-only, through RabbitMQ's cuttlefish
    schemas (which check that the certificate files exist and are readable)."""
    plugins = plugins_dir()
    pki = make_pki(tmp_path / "tls")
    files = []
    for name, values in [
        ("3.13-tls", TLS_SCENARIOS["tls-cert-manager"]),
        ("3.13-tls-only", TLS_SCENARIOS["tls-only"]),
        ("4.0-tls", {**TLS_SCENARIOS["tls-only-4.0"], "tls": {"enabled": True, "existingSecret": "s"}}),
        ("4.0-tls-only", TLS_SCENARIOS["tls-only-4.0"]),
    ]:
        text = configmap_file(render(values), f"{STS}-config", "rabbitmq.conf").replace(TLS_DIR, str(pki))
        files.append(write_conf(tmp_path, name, text))
    # the checker sees the TLS keys: a certificate file that is not there is refused
    missing = write_conf(tmp_path, "missing-cert", f"listeners.ssl.default = 5671\nssl_options.certfile = {tmp_path}/nope.crt\n")
    p = run_check(plugins, files + [missing])
    out = p.stdout + p.stderr
    for f in files:
        assert f"{f} OK" in out, out
    assert f"{missing} ERROR validation: ssl_options.certfile invalid, file does not exist" in out, out


def test_lb_plain_and_amqps_frontends():
    r = render(TLS_SCENARIOS["tls-cert-manager"])
    cfg = lb_config(r)
    fronts = {f["name"]: f for f in cfg["frontend"]}
    assert fronts["amqp"]["bind"] == "0.0.0.0:5672" and fronts["amqp"]["backend"] == "rabbitmq"
    assert fronts["amqps"]["bind"] == "0.0.0.0:5671" and fronts["amqps"]["backend"] == "rabbitmq-tls"
    assert "tls" not in fronts["amqps"], "passthrough: the brokers terminate TLS"
    backends = {b["name"]: b for b in cfg["backend"]}
    assert [s["address"] for s in backends["rabbitmq"]["server"]] == [f"{p}:5672" for p in PODS]
    assert [s["address"] for s in backends["rabbitmq-tls"]["server"]] == [f"{p}:5671" for p in PODS]
    for b in backends.values():
        assert "send_proxy" not in b["server"][0], "RabbitMQ does not accept PROXY protocol by default"
        assert b["check"]["port"] == 15672 and "tls" not in b["check"]
    svc = r.get("Service", LB)
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"amqp": 5672, "amqps": 5671, "admin": 8404}
    c = container(r.get("Deployment", LB)["spec"]["template"]["spec"], "warren-lb")
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"amqp": 5672, "amqps": 5671, "admin": 8404}


def test_lb_tls_only_checks_over_tls_with_the_mounted_ca():
    r = render(TLS_SCENARIOS["tls-only"])
    cfg = lb_config(r)
    (front,) = cfg["frontend"]
    assert front["name"] == "amqps" and front["bind"] == "0.0.0.0:5671"
    (backend,) = cfg["backend"]
    assert [s["address"] for s in backend["server"]] == [f"{p}:5671" for p in PODS]
    check = backend["check"]
    assert check["type"] == "rabbitmq" and check["port"] == 15671
    assert check["tls"] == {"ca": "/run/secrets/warren-tls/ca.crt", "verify": "required"}
    pod = r.get("Deployment", LB)["spec"]["template"]["spec"]
    c = container(pod, "warren-lb")
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "tls-ca"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == "tls-ca"]
    assert vol["secret"]["secretName"] == f"{STS}-tls"
    assert vol["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}], "the CA only, not the brokers' key"
    assert f"{mount['mountPath']}/ca.crt" == check["tls"]["ca"]
    assert c["readinessProbe"]["tcpSocket"]["port"] == "amqps"
    assert c["livenessProbe"]["tcpSocket"]["port"] == "amqps"
    assert {p["name"] for p in r.get("Service", LB)["spec"]["ports"]} == {"amqps", "admin"}


def lb_check_config(tmp_path, values):
    pki = make_pki(tmp_path / "tls")
    text = configmap_file(render(values), f"{LB}-config", "warren-lb.toml")
    return check_config(tmp_path, text, [("/run/secrets/warren-tls/ca.crt", pki / "ca.crt")])


def test_lb_config_plain_and_tls_accepted_by_check_config(tmp_path):
    p = lb_check_config(tmp_path, TLS_SCENARIOS["tls-cert-manager"])
    assert p.returncode == 0, f"warren-lb rejected the chart's config:\n{p.stdout}\n{p.stderr}"


def test_lb_config_tls_only_accepted_by_check_config(tmp_path):
    p = lb_check_config(tmp_path, TLS_SCENARIOS["tls-only"])
    assert p.returncode == 0, f"warren-lb rejected the chart's config:\n{p.stdout}\n{p.stderr}"


def test_broker_ports_probe_and_services():
    r = render(TLS_SCENARIOS["tls-cert-manager"])
    main = container(pod_spec(r), "rabbitmq")
    assert {p["name"]: p["containerPort"] for p in main["ports"]} == {
        "amqp": 5672, "management": 15672, "prometheus": 15692, "amqps": 5671,
        "management-tls": 15671, "prometheus-tls": 15691, "epmd": 4369, "dist": 25672}
    assert main["readinessProbe"]["tcpSocket"]["port"] == "amqp"
    only = render(TLS_SCENARIOS["tls-only"])
    main = container(pod_spec(only), "rabbitmq")
    assert {p["name"] for p in main["ports"]} == {"amqps", "management-tls", "prometheus-tls", "epmd", "dist"}
    assert main["readinessProbe"]["tcpSocket"]["port"] == "amqps"
    svc = only.get("Service", HEADLESS)
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {
        "amqps": 5671, "management-tls": 15671, "prometheus-tls": 15691, "epmd": 4369, "dist": 25672}
    # the preStop and after-formation steps talk to the node over Erlang distribution, not a listener
    prestop = configmap_file(only, f"{STS}-config", "prestop.sh")
    assert "rabbitmq-upgrade drain" in prestop and "5672" not in prestop


def test_network_policies_open_the_tls_ports():
    r = render(TLS_SCENARIOS["tls-cert-manager"])
    rules = r.get("NetworkPolicy", STS)["spec"]["ingress"]
    assert [5671, 5672, 15671, 15672] in [ports(rule) for rule in rules]
    assert [5671, 5672] in [ports(rule) for rule in rules]
    (lb_rule,) = r.get("NetworkPolicy", LB)["spec"]["ingress"]
    assert ports(lb_rule) == [5671, 5672]
    only = render(TLS_SCENARIOS["tls-only"])
    all_ports = [ports(rule) for rule in only.get("NetworkPolicy", STS)["spec"]["ingress"]]
    assert all_ports == [[4369, 25672], [5671, 15671], [5671], [15691]]
    assert ports(only.get("NetworkPolicy", LB)["spec"]["ingress"][0]) == [5671]


def test_service_monitor_scrapes_https_in_tls_only_mode():
    sm = render(TLS_SCENARIOS["tls-only"]).get("ServiceMonitor", "warren")
    broker = sm["spec"]["endpoints"][0]
    assert broker["port"] == "prometheus-tls" and broker["scheme"] == "https"
    assert broker["tlsConfig"]["ca"] == {"secret": {"name": f"{STS}-tls", "key": "ca.crt"}}
    name = broker["tlsConfig"]["serverName"]
    assert name in render(TLS_SCENARIOS["tls-only"]).all("Certificate")[0]["spec"]["dnsNames"]


def test_helm_test_drill_speaks_amqps_in_tls_only_mode():
    pod = render(TLS_SCENARIOS["tls-only"]).get("Pod", "warren-drill-smoke")
    c = container(pod["spec"], "warren-drill")
    args = c["args"]
    assert args[args.index("--endpoint") + 1] == f"{LB}.{NAMESPACE}.svc.cluster.local:5671"
    assert "--tls" in args
    ca = args[args.index("--tls-ca") + 1]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "tls-ca"]
    assert ca == f"{mount['mountPath']}/ca.crt"
    # the lb Service name the drill checks is in the brokers' certificate (passthrough)
    assert f"{LB}.{NAMESPACE}.svc.cluster.local" in render(TLS_SCENARIOS["tls-only"]).all("Certificate")[0]["spec"]["dnsNames"]
    plain = render(TLS_SCENARIOS["tls-cert-manager"]).get("Pod", "warren-drill-smoke")
    assert "--tls" not in container(plain["spec"], "warren-drill")["args"]


def test_start_runs_the_watcher_only_with_tls():
    on = configmap_file(render(TLS_SCENARIOS["tls-cert-manager"]), f"{STS}-config", "start.sh")
    assert 'sh "$(dirname "$0")/tls-watch.sh" "$$" &' in on
    assert on.index("tls-watch.sh") < on.index('exec "$server"')
    r = render()
    assert "tls-watch" not in configmap_file(r, f"{STS}-config", "start.sh")
    assert "tls-watch.sh" not in r.get("ConfigMap", f"{STS}-config")["data"]


def run_watch(tmp_path, server_pid, fail_first=0):
    """tls-watch.sh (1 s interval) on a temporary TLS dir with a stub rabbitmqctl
    that records its calls and fails the first `fail_first` of them."""
    tls = make_pki(tmp_path / "tls")
    text = configmap_file(render({"tls": {**TLS_SCENARIOS["tls-cert-manager"]["tls"], "rotationCheckSeconds": 1}}),
                          f"{STS}-config", "tls-watch.sh")
    script = tmp_path / "tls-watch.sh"
    script.write_text(text.replace(TLS_DIR, str(tls)))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "fails").write_text(str(fail_first))
    stub = bin_dir / "rabbitmqctl"
    stub.write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/calls
n=$(cat {tmp_path}/fails)
if [ "$n" -gt 0 ]; then echo $((n - 1)) > {tmp_path}/fails; echo "Error: unable to perform an operation on node" >&2; exit 69; fi
""")
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin")
    proc = subprocess.Popen(["sh", str(script), str(server_pid)], env=env, stderr=subprocess.PIPE, text=True)
    return proc, tls


def calls(tmp_path):
    f = tmp_path / "calls"
    return f.read_text().splitlines() if f.exists() else []


def rotate(tls):
    """A renewal by the same CA, written as the kubelet does: new content renamed over
    the same paths."""
    new = make_pki(tls.parent / f"renewed-{time.monotonic_ns()}", ca=tls)
    for name in ("tls.crt", "tls.key", "ca.crt"):
        shutil.copy(new / name, tls / f".{name}.tmp")
        os.replace(tls / f".{name}.tmp", tls / name)


def test_watch_clears_the_pem_cache_once_per_rotation(tmp_path):
    sleeper = subprocess.Popen(["sleep", "120"])
    proc, tls = run_watch(tmp_path, sleeper.pid)
    try:
        rotate(tls)
        poll("the PEM cache clear after a rotation", lambda: calls(tmp_path), timeout=30, interval=0.2)
        assert calls(tmp_path) == ["-q eval ssl:clear_pem_cache()."]
        rotate(tls)
        poll("a second clear after a second rotation", lambda: len(calls(tmp_path)) == 2, timeout=30, interval=0.2)
        assert calls(tmp_path) == ["-q eval ssl:clear_pem_cache()."] * 2
    finally:
        sleeper.kill()
        sleeper.wait()
    # the watcher ends with the server it watches
    proc.wait(timeout=30)
    assert proc.returncode == 0
    err = proc.stderr.read()
    assert err.count("PEM cache cleared: new TLS connections get the new certificate") == 2, err


def test_watch_retries_a_failed_clear(tmp_path):
    sleeper = subprocess.Popen(["sleep", "120"])
    proc, tls = run_watch(tmp_path, sleeper.pid, fail_first=2)
    try:
        rotate(tls)
        poll("the clear retried until it succeeds", lambda: len(calls(tmp_path)) >= 3, timeout=30, interval=0.2)
    finally:
        sleeper.kill()
        sleeper.wait()
    proc.wait(timeout=30)
    err = proc.stderr.read()
    assert err.count("clearing the PEM cache failed (retrying in 1s)") == 2, err
    assert err.count("PEM cache cleared") == 1, err
    assert len(calls(tmp_path)) == 3, "no further clear once it succeeded"
