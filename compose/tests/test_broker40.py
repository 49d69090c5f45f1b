"""The RabbitMQ 4.0 line (WARREN_BROKER=4.0: Debian trixie's 4.0.5) end to
end with a real engine: three 4.0 nodes in one cluster behind the two lb
hosts, quorum defaults and feature flags as compose renders them, a crash
drill through the VIP with nothing lost, `down -v` leaving nothing behind;
TLS on (WARREN_TLS=1): a broker certificate renewed without a restart on 4.0
(Erlang 27's PEM cache); and the opt-in Khepri switch on a real 4.0 node (the whole Khepri stack:
test_broker40_khepri.py)."""

import subprocess
import time
import uuid

import pika
import pytest

from conftest import NETS, Stack, stack_up
from warren_testkit import poll, run
from test_stack import _check_reports, _find, _verdict

VERSION = "4.0.5"


@pytest.fixture(scope="module")
def stack40(images40, secrets_dir):
    yield from stack_up(Stack("warrentest40", "quorum", NETS["quorum-4.0"], secrets_dir,
                              broker="4.0", tls=True))


def test_40_renew_certificate_without_restart(stack40):
    stack40.renew_and_check("broker2")


def test_40_cluster_of_three_reports_4_0_5(stack40):
    for i in (1, 2, 3):
        running = sorted(n["name"] for n in stack40.mgmt("/nodes", node=i) if n["running"])
        assert running == [f"rabbit@broker{j}" for j in (1, 2, 3)], (i, running)
        overview = stack40.mgmt("/overview", node=i)
        assert overview["rabbitmq_version"] == VERSION, overview["rabbitmq_version"]
        assert overview["node"] == f"rabbit@broker{i}"


def test_40_quorum_defaults_no_ha_policies(stack40):
    policies = stack40.mgmt("/policies")
    assert not [p for p in policies if any(k.startswith("ha-") for k in p["definition"])], policies
    vhost = stack40.mgmt("/vhosts/%2F")
    dqt = vhost.get("default_queue_type") or vhost.get("metadata", {}).get("default_queue_type")
    assert dqt == "quorum", vhost


def test_40_stable_feature_flags_enabled_khepri_left_off(stack40):
    # warren-broker-after-formation enables every stable flag once all three
    # nodes run; khepri_db is opt-in (WARREN_KHEPRI, default false)
    def flags():
        ff = {f["name"]: f for f in stack40.mgmt("/feature-flags")}
        pending = [n for n, f in ff.items() if f["stability"] == "stable" and f["state"] != "enabled"]
        return ff if not pending else None
    ff = poll("every stable feature flag enabled", flags, 120, interval=2)
    assert ff["khepri_db"]["state"] == "disabled", ff["khepri_db"]
    logs = stack40.dc("logs", "--no-color", "broker1").stdout
    assert "after formation: cluster formed (healthy: 3 running cluster nodes)" in logs, logs[-2000:]


def test_40_publish_consume_through_vip_default_queue_type(stack40):
    params = pika.ConnectionParameters(
        host=stack40.vip, port=5672,
        credentials=pika.PlainCredentials("admin", stack40.password),
        connection_attempts=5, retry_delay=2, socket_timeout=10, blocked_connection_timeout=30,
    )
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = f"warrentest40-pc-{int(time.time())}"
        # no x-queue-type: the vhost's default_queue_type makes it a quorum queue
        ch.queue_declare(q, durable=True)
        bodies = [f"m{i}".encode() for i in range(50)]
        for b in bodies:
            ch.basic_publish("", q, b, pika.BasicProperties(delivery_mode=2), mandatory=True)
        got = []
        for _ in bodies:
            method, _, body = ch.basic_get(q, auto_ack=False)
            assert method is not None, f"queue {q} ran dry after {len(got)} messages"
            got.append(body)
            ch.basic_ack(method.delivery_tag)
        assert got == bodies
        info = stack40.mgmt(f"/queues/%2F/{q}")
        assert info["type"] == "quorum", info
        assert sorted(info["members"]) == [f"rabbit@broker{i}" for i in (1, 2, 3)], info
        ch.queue_delete(q)
    finally:
        conn.close()


def test_40_drill_crash_master_broker(stack40):
    p, report, html = stack40.drill("crash")
    out = p.stdout[-4000:] + p.stderr[-4000:]
    assert report is not None, f"no drill report; exit {p.returncode}\n{out}"
    # the fault happened: the broker the drill names was killed
    assert report["master_before"] in [f"rabbit@broker{i}" for i in (1, 2, 3)], report
    _check_reports(report, html, "crash")
    v = _verdict(report)
    assert str(v.get("verdict", "")).lower() == "pass", f"{v}\n{out}"
    assert v.get("lost") == 0, f"{v}\n{out}"
    assert p.returncode == 0, out
    stack40.wait_healthy(("broker1", "broker2", "broker3"), timeout=240)
    assert all(n["running"] for n in stack40.mgmt("/nodes"))


def test_40_drill_lb_crash_active_lb(stack40):
    before = stack40.vip_holder()
    assert len(before) == 1, before
    q = f"warrentest40-lbcrash-{int(time.time())}"
    p, report, html = stack40.drill("lb-crash", extra=("--queue", q))
    out = p.stdout[-4000:] + p.stderr[-4000:]
    assert report is not None, f"no drill report; exit {p.returncode}\n{out}"
    _check_reports(report, html, "lb-crash")
    v = _verdict(report)
    assert v.get("lost") == 0, f"{v}\n{out}"
    assert _find(report, "unsettled") in (0, None), f"{v}\n{out}"
    assert str(v.get("verdict", "")).lower() == "pass", f"{v}\n{out}"
    assert p.returncode == 0, out
    stack40.wait_healthy(("lb1", "lb2"), timeout=120)
    assert len(poll("VIP held", lambda: stack40.vip_holder(), 60, interval=2)) == 1


def test_40_down_leaves_nothing_behind(stack40):
    p = stack40.down()
    assert p.returncode == 0, p.stderr
    assert stack40.leftovers() == {}


def test_40_khepri_opt_in_enables_khepri_db_and_stays_healthy(broker_image40, tmp_path):
    """WARREN_KHEPRI=true on a one-node 4.0 cluster: khepri_db is enabled
    once the cluster formed, and the health check still counts the running
    nodes (rabbit_mnesia's view of them fails once Khepri holds the
    metadata)."""
    for name, content in (("erlang_cookie", "C" * 40), ("admin_password", "p" * 20)):
        (tmp_path / name).write_text(content)
        (tmp_path / name).chmod(0o444)
    name = f"warrentest40-khepri-{uuid.uuid4().hex[:8]}"
    cmd = ["docker", "run", "-d", "--name", name, "--label", "org.warren.test=1",
           "--network", "none", "--hostname", "solo",
           "-v", f"{tmp_path}/erlang_cookie:/run/secrets/erlang_cookie:ro",
           "-v", f"{tmp_path}/admin_password:/run/secrets/admin_password:ro",
           "-e", "WARREN_BROKER=4.0", "-e", "WARREN_MODE=quorum", "-e", "WARREN_KHEPRI=true",
           "-e", "WARREN_CLUSTER_NODES=rabbit@solo", f"warren/broker:{broker_image40}"]
    run(cmd)
    try:
        def logs():
            return subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr

        poll("khepri_db enabled", lambda: "khepri_db enabled (metadata store: Khepri)" in logs(), 180, interval=2)
        state = run(["docker", "exec", name, "bash", "-c",
                     "HOME=/var/lib/rabbitmq setpriv --reuid=rabbitmq --regid=rabbitmq "
                     "--init-groups rabbitmqctl -q list_feature_flags name state"]).stdout
        assert "khepri_db\tenabled" in state, state
        # asking for two nodes makes the check count them: it must read one
        health = run(["docker", "exec", "-e", "WARREN_HEALTH_MIN_NODES=2", name,
                      "warren-broker-healthcheck"], check=False)
        assert health.stdout.strip() == \
            "unhealthy: 1 running cluster node(s), need 2 (peers unreachable or cluster not formed)", \
            health.stdout + health.stderr
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)
