"""The compose topology end to end, with a real engine: three brokers in one
cluster behind two lb hosts sharing a VIP; publish/consume through the VIP;
failover drills (crash of the master broker, lb-crash of the active lb) must
pass; `down -v` leaves nothing behind. Runs once per mode (mirrored, quorum),
with TLS on (WARREN_TLS=1, both listeners): AMQPS through the VIP, HTTPS
management and Prometheus, a certificate renewed without a restart, and the
crash drill over AMQPS through the VIP.
"""

import base64
import json
import os
import ssl
import tempfile
import time
import urllib.error
import urllib.request

import pika
import pytest

from conftest import ROOT, ConnectionSampler
from warren_testkit import poll, run


def test_cluster_of_three_formed(stack):
    nodes = stack.mgmt("/nodes")
    assert sorted(n["name"] for n in nodes) == [f"rabbit@broker{i}" for i in (1, 2, 3)]
    assert all(n["running"] for n in nodes), nodes
    # every node sees the same three running members
    for i in (2, 3):
        assert sorted(n["name"] for n in stack.mgmt("/nodes", node=i) if n["running"]) == \
            [f"rabbit@broker{i}" for i in (1, 2, 3)]


def test_replication_settings_for_mode(stack):
    policies = {p["name"]: p for p in stack.mgmt("/policies")}
    vhost = stack.mgmt("/vhosts/%2F")
    if stack.mode == "mirrored":
        d = policies["warren-ha"]["definition"]
        assert d["ha-mode"] == "all"
        assert d["ha-sync-mode"] == "automatic"
        assert d["ha-promote-on-failure"] in ("always", "when-synced")
        assert d["ha-promote-on-shutdown"] in ("always", "when-synced")
    else:
        assert "warren-ha" not in policies
        dqt = vhost.get("default_queue_type") or vhost.get("metadata", {}).get("default_queue_type")
        assert dqt == "quorum", vhost


def test_no_usable_guest(stack):
    users = [u["name"] for u in stack.mgmt("/users")]
    assert users == ["admin"], users
    with pytest.raises(Exception):
        stack.mgmt("/overview", user="guest", password="guest")


def test_vip_on_exactly_one_lb(stack):
    holders = poll("VIP on one lb", lambda: stack.vip_holder(), 60, interval=2)
    assert holders == ["lb1"], holders  # lb1 has the higher priority


@pytest.mark.parametrize("port", [5672, 5671], ids=["amqp", "amqps"])
def test_publish_consume_through_vip(stack, port):
    tls = {}
    if port == 5671:
        # passthrough: the client sees the broker's certificate at the VIP
        # (its SAN names the VIP's IP), checked against the compose CA
        tls = {"ssl_options": pika.SSLOptions(stack.tls_context(), server_hostname=stack.vip)}
    params = pika.ConnectionParameters(
        host=stack.vip, port=port,
        credentials=pika.PlainCredentials("admin", stack.password),
        connection_attempts=5, retry_delay=2, socket_timeout=10, blocked_connection_timeout=30,
        client_properties={"connection_name": f"warrentest-pc-{port}"}, **tls,
    )
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        # the broker saw this connection as TLS exactly when it went to 5671
        seen = poll("the connection in the management API",
                    lambda: [c for c in stack.connections() if c[0] == f"warrentest-pc-{port}"], 30, interval=1)
        assert seen == [(f"warrentest-pc-{port}", port == 5671, port)], seen
        q = f"warrentest-pc-{port}-{int(time.time())}"
        args = {"x-queue-type": "quorum"} if stack.mode == "quorum" else {}
        ch.queue_declare(q, durable=True, arguments=args)
        bodies = [f"m{i}".encode() for i in range(50)]
        for b in bodies:
            ch.basic_publish("", q, b, pika.BasicProperties(delivery_mode=2), mandatory=True)
        got = []
        for _ in range(len(bodies)):
            method, _, body = ch.basic_get(q, auto_ack=False)
            assert method is not None, f"queue {q} ran dry after {len(got)} messages"
            got.append(body)
            ch.basic_ack(method.delivery_tag)
        assert got == bodies
        # the queue is replicated on all three nodes
        info = stack.mgmt(f"/queues/%2F/{q}")
        if stack.mode == "mirrored":
            def synced():
                i = stack.mgmt(f"/queues/%2F/{q}")
                return len(i.get("synchronised_slave_nodes", [])) == 2 and i
            info = poll("2 synchronised mirrors", synced, 60, interval=2)
            # (3.10's queue object does not name the policy; two synchronised
            # mirrors on a queue declared without arguments is the proof)
            assert sorted(info["synchronised_slave_nodes"] + [info["node"]]) == \
                [f"rabbit@broker{i}" for i in (1, 2, 3)]
        else:
            assert info["type"] == "quorum"
            assert len(info.get("members", [])) == 3, info
        ch.queue_delete(q)
    finally:
        conn.close()


def _verdict(report):
    """verdict and lost count from the drill's JSON report, wherever they sit."""
    found = {}

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("verdict", "lost") and k not in found and not isinstance(v, (dict, list)):
                    found[k] = v
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(report)
    return found


def _admin(url, method="GET", token=None):
    """(HTTP status, body) of one warren-lb admin API request."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _server(status_body, name):
    servers = json.loads(status_body)["backends"][0]["servers"]
    return next(s for s in servers if s["name"] == name)


def test_lb_admin_api_on_the_compose_network_only(stack):
    # /status answers through the VIP (the lb that holds it) and on each lb
    # host's compose address: what the drill's --lb-status reads
    for host in (stack.vip, f"{stack.net}.21", f"{stack.net}.22"):
        code, body = poll(f"{host}:8404/status", lambda h=host: _admin(stack.lb_status_url(h)), 30, interval=2)
        assert code == 200, body
        names = [s["name"] for s in json.loads(body)["backends"][0]["servers"]]
        assert names == ["broker1", "broker2", "broker3"], body
    # never a published port of the Docker host
    for svc in ("lb1", "lb2"):
        ports = run(["docker", "inspect", "-f", "{{json .HostConfig.PortBindings}}",
                     stack.container(svc)]).stdout
        assert list(json.loads(ports)) == ["5672/tcp"], ports
    # commands need the lb_admin_token (on lb2, which does not hold the VIP)
    base = f"http://{stack.net}.22:8404/servers/rabbitmq/broker3"
    assert _admin(f"{base}/maint", "POST")[0] == 401
    assert _admin(f"{base}/maint", "POST", token="not-the-token-at-all")[0] == 401
    code, body = _admin(f"{base}/maint", "POST", token=stack.lb_token)
    try:
        assert code == 200, body
        _, status = _admin(stack.lb_status_url(f"{stack.net}.22"))
        assert _server(status, "broker3")["admin"] == "maint", status
    finally:
        code, body = _admin(f"{base}/ready", "POST", token=stack.lb_token)
        assert code == 200, body
    _, status = _admin(stack.lb_status_url(f"{stack.net}.22"))
    assert _server(status, "broker3")["admin"] == "ready", status


def _table_row(report):
    """The report's row of compose/drill-table, the demo's final table."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(report, f)
    try:
        out = run([os.path.join(ROOT, "compose", "drill-table"), f.name]).stdout
    finally:
        os.unlink(f.name)
    # shown with -s: the figures docs/compose.md quotes
    print(f"drill-table: {out.splitlines()[2]}")
    return out.splitlines()[2].split()


def _check_reports(report, html, fault):
    """What scripts/demo shows of a drill: the lb switch was measured, the
    HTML report exists, the table row carries the report's values."""
    assert not report["lb_switch"].startswith("unavailable"), report["lb_switch"]
    assert html is not None and fault in html and "<html" in html, (html or "")[:300]
    row = _table_row(report)
    a = report["accounting"]
    assert row[:5] == [fault, str(a["verdict"]), str(a["confirmed"]), str(a["lost"]),
                       str(a["duplicated"])], row


def test_tls_listeners_management_and_prometheus(stack):
    # every broker serves its own certificate, verified against the compose CA
    ctx = stack.tls_context()
    for i in (1, 2, 3):
        host = f"{stack.net}.{10 + i}"
        with urllib.request.urlopen(f"https://{host}:15691/metrics", context=ctx, timeout=10) as r:
            assert b"rabbitmq_" in r.read()
        req = urllib.request.Request(f"https://{host}:15671/api/whoami")
        req.add_header("Authorization", "Basic " + base64.b64encode(
            f"admin:{stack.password}".encode()).decode())
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            assert json.load(r)["name"] == "admin"
    # a client that does not trust the compose CA is refused
    with pytest.raises(urllib.error.URLError) as e:
        urllib.request.urlopen(f"https://{stack.net}.11:15671/", context=ssl.create_default_context(), timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value), e.value


def test_lb_amqps_frontend_passthrough(stack):
    _, body = _admin(stack.lb_status_url())
    st = json.loads(body)
    fronts = {f["name"]: f for f in st["frontends"]}
    assert fronts["amqps"]["bind"] == "0.0.0.0:5671" and fronts["amqps"]["tls"] is None, fronts  # passthrough
    tls_backend = next(b for b in st["backends"] if b["name"] == "rabbitmq-tls")
    assert [s["name"] for s in tls_backend["servers"]] == ["broker1", "broker2", "broker3"], tls_backend


def test_renew_certificate_without_restart(stack):
    stack.renew_and_check("broker3")


def test_drill_crash_master_broker(stack):
    # through the VIP over AMQPS (the lb's passthrough frontend 5671)
    with ConnectionSampler(stack) as sampled:
        p, report, html = stack.drill("crash", tls=True)
    out = p.stdout[-4000:] + p.stderr[-4000:]
    drill = {c for c in sampled.seen if c[0].startswith("warren-drill")}
    assert drill, f"no warren-drill connection seen in the management API: {sampled.seen}\n{out}"
    assert all(ssl_on and port == 5671 for _, ssl_on, port in drill), drill
    assert report is not None, f"no drill report; exit {p.returncode}\n{out}"
    _check_reports(report, html, "crash")
    if report["master_before"] == "rabbit@broker1":
        # the lbs' primary was killed: the lb holding the VIP switched away
        assert "ms after the fault" in report["lb_switch"], report["lb_switch"]
    v = _verdict(report)
    assert str(v.get("verdict", "")).lower() == "pass", f"{v}\n{out}"
    assert v.get("lost") == 0, f"{v}\n{out}"
    assert p.returncode == 0, out
    # the crashed broker came back and rejoined: three running nodes, healthy
    stack.wait_healthy(("broker1", "broker2", "broker3"), timeout=240)
    assert all(n["running"] for n in stack.mgmt("/nodes"))


def _find(report, key):
    """First value of `key` anywhere in the JSON report."""
    if isinstance(report, dict):
        if key in report:
            return report[key]
        report = list(report.values())
    if isinstance(report, list):
        for v in report:
            r = _find(v, key)
            if r is not None:
                return r
    return None


def test_drill_lb_crash_active_lb(stack):
    before = stack.vip_holder()
    assert len(before) == 1, before
    q = f"warrentest-lbcrash-{int(time.time())}"
    p, report, html = stack.drill("lb-crash", extra=("--queue", q))
    out = p.stdout[-4000:] + p.stderr[-4000:]
    assert report is not None, f"no drill report; exit {p.returncode}\n{out}"
    _check_reports(report, html, "lb-crash")
    v = _verdict(report)
    # Deliveries unacked on consumer connections orphaned by the dead lb host
    # are requeued only when the broker's heartbeat drops those connections;
    # the drill's drain waits for that (ready = unacked = 0, orphaned
    # connections gone) before it counts anything lost.
    assert v.get("lost") == 0, f"{v}\n{out}"
    assert _find(report, "unsettled") in (0, None), f"{v}\n{out}"
    assert str(v.get("verdict", "")).lower() == "pass", f"{v}\n{out}"
    assert p.returncode == 0, out
    # both lb hosts back (the drill restarts the one it killed), VIP on exactly one
    stack.wait_healthy(("lb1", "lb2"), timeout=120)
    assert len(poll("VIP held", lambda: stack.vip_holder(), 60, interval=2)) == 1


def test_down_leaves_nothing_behind(stack):
    p = stack.down()
    assert p.returncode == 0, p.stderr
    assert stack.leftovers() == {}
