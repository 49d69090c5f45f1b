"""Converge site.yml on five systemd "VMs" (containers), then idempotence, then verify.

The containers come from the offline Debian base image (scripts/lib/docker.sh) plus
systemd, sshd and python3 (tests/image/Dockerfile); Ansible reaches them over ssh,
like real VMs. Network: one 10.240.N.0/24 docker network per run, only our own
containers' addresses are ever contacted. Everything created here is named
wans-N-* and removed at the end, also on failure.

Run alone:  python3 -m pytest -q ansible/tests/test_converge.py
"""

import base64
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import ANSIBLE_DIR, REPO_DIR, run_playbook

# Runs by default (about 10 minutes; 15+ on a heavily loaded 2-core machine);
# WARREN_ANSIBLE_CONVERGE=0 skips it for a quick static-only run.
pytestmark = pytest.mark.skipif(
    os.environ.get("WARREN_ANSIBLE_CONVERGE") == "0",
    reason="WARREN_ANSIBLE_CONVERGE=0: the five-container converge is skipped",
)

NODE_IMAGE = "localhost/warren-molecule-node:bookworm"
BROKERS = ["rabbit1", "rabbit2", "rabbit3"]
LBS = ["lb1", "lb2"]
COOKIE = "wans-test-cookie-0123456789abcdefghij"
PASSWORD = "wans-test-password"


def sh(cmd, check=True, timeout=600, **kw):
    proc = subprocess.run(cmd, shell=isinstance(cmd, str), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {cmd}\n{proc.stdout[-4000:]}")
    return proc


def wait_for(what, predicate, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def binary(env_name, name):
    """A warren binary for the lb hosts: env var (set by scripts/test) or target/."""
    candidates = [os.environ.get(env_name, "")]
    candidates += [str(REPO_DIR / "target" / p / name) for p in ("release", "debug")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return None


class Bed:
    def __init__(self, tmp):
        self.tmp = tmp
        self.net = None
        self.prefix = None
        self.containers = []
        self.ips = {}

    def ip(self, host):
        return self.ips[host]

    def exec(self, host, *cmd, check=True, timeout=120):
        return sh(["docker", "exec", f"{self.prefix}-{host}", *cmd], check=check, timeout=timeout)


def docker_up():
    lib = REPO_DIR / "scripts/lib/docker.sh"
    sh(["bash", "-c", f"source {lib} && docker_engine_up && docker_base_image"], timeout=900)
    if sh(["docker", "image", "inspect", NODE_IMAGE], check=False).returncode != 0:
        sh(["docker", "build", "-q", "-t", NODE_IMAGE, str(ANSIBLE_DIR / "tests/image")], timeout=900)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    if shutil.which("docker") is None:
        pytest.fail("docker is not installed (scripts/install-deps installs docker.io)")
    docker_up()
    b = Bed(tmp_path_factory.mktemp("wans"))
    try:
        # a /24 of 10.240.0.0/16 not used by another run
        for n in [100 + (os.getpid() + i) % 150 for i in range(150)]:
            name = f"wans-{n}"
            r = sh(["docker", "network", "create", "--subnet", f"10.240.{n}.0/24", name], check=False)
            if r.returncode == 0:
                b.net, b.prefix, subnet = name, name, n
                break
        else:
            pytest.fail("no free 10.240.N.0/24 for a docker network")
        key = b.tmp / "id"
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        for i, host in enumerate(BROKERS + LBS):
            ip = f"10.240.{subnet}.{11 + i if host in BROKERS else 21 + LBS.index(host)}"
            b.ips[host] = ip
            cname = f"{b.prefix}-{host}"
            # recorded first: a container created but not started is removed too
            b.containers.append(cname)
            sh(["docker", "run", "-d", "--name", cname, "--hostname", host,
                "--network", b.net, "--network-alias", host, "--ip", ip,
                "--cgroupns=private", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
                "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                "--label", "warren.area=ansible", NODE_IMAGE])
        pub = (b.tmp / "id.pub").read_text()
        for host in BROKERS + LBS:
            wait_for(f"systemd in {host}", lambda h=host: b.exec(
                h, "systemctl", "is-system-running", check=False).stdout.strip() in ("running", "degraded"), 120)
            b.exec(host, "sh", "-c", f"echo '{pub.strip()}' > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys")
        b.vip = f"10.240.{subnet}.100"
        b.lb_bin = binary("WARREN_LB_BIN", "warren-lb")
        b.vip_bin = binary("WARREN_VIP_BIN", "warren-vip")
        b.inventory = b.tmp / "hosts.yml"
        lines = ["all:", "  vars:",
                 "    ansible_user: root",
                 f"    ansible_ssh_private_key_file: {key}",
                 "    ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
                 f"    rabbitmq_cluster_erlang_cookie: {COOKIE}",
                 f"    rabbitmq_cluster_admin_password: {PASSWORD}",
                 f"    warren_vip_address: {b.vip}/24",
                 "    warren_vip_advert_int: 1",
                 f"    warren_vip_router_id: {subnet % 255 + 1}",
                 f"    warren_lb_binary_src: {b.lb_bin or '/nonexistent/warren-lb'}",
                 f"    warren_vip_binary_src: {b.vip_bin or '/nonexistent/warren-vip'}",
                 "  children:"]
        for group, hosts in (("rabbitmq", BROKERS), ("warren_lb", LBS)):
            lines += [f"    {group}:", "      hosts:"]
            lines += [f"        {h}: {{ansible_host: {b.ips[h]}}}" for h in hosts]
        b.inventory.write_text("\n".join(lines) + "\n")
        for host in BROKERS + LBS:
            wait_for(f"sshd in {host}", lambda h=host: socket.create_connection((b.ips[h], 22), 2).close() or True, 60)
        yield b
    finally:
        if os.environ.get("WANS_KEEP"):
            print(f"WANS_KEEP set: leaving {b.containers} and {b.net}")
        else:
            for c in b.containers:
                sh(["docker", "rm", "-f", "-v", c], check=False)
            if b.net:
                sh(["docker", "network", "rm", b.net], check=False)


def recap(output):
    """{host: {ok, changed, failed, unreachable}} from the PLAY RECAP."""
    out = {}
    for m in re.finditer(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M):
        out[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)),
                           "unreachable": int(m.group(4)), "failed": int(m.group(5))}
    return out


LOG_DIR = pathlib.Path(os.environ.get("WANS_LOG_DIR", "/tmp/wans-logs"))


def logged_playbook(name, playbook, bed, *args, timeout=1500):
    """run_playbook, with the whole output kept in WANS_LOG_DIR/<name>.log."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = run_playbook(playbook, bed.inventory, *args, timeout=timeout, log=LOG_DIR / f"{name}.log")
    proc.seconds = time.monotonic() - t0
    print(f"{name}: {proc.seconds:.0f}s, rc={proc.returncode}, log {LOG_DIR / name}.log")
    return proc


def failures(output):
    return "\n".join(l for l in output.splitlines() if l.startswith(("fatal:", "failed:")))[-4000:]


def site_limit(bed):
    return [] if (bed.lb_bin and bed.vip_bin) else ["--limit", "rabbitmq"]


def mgmt(bed, host, path, method="GET", body=None):
    req = urllib.request.Request(f"http://{bed.ip(host)}:15672/api/{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode())
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = resp.read()
        return json.loads(data) if data else None


def test_converge_then_idempotent(bed):
    first = logged_playbook("converge", "site.yml", bed, *site_limit(bed))
    assert first.returncode == 0, failures(first.output) + first.output[-3000:]
    assert sum(r["changed"] for r in recap(first.output).values()) > 0
    second = logged_playbook("idempotence", "site.yml", bed, *site_limit(bed))
    assert second.returncode == 0, failures(second.output) + second.output[-3000:]
    rc = recap(second.output)
    assert set(BROKERS) <= set(rc), second.output[-3000:]
    changed = {h: r["changed"] for h, r in rc.items() if r["changed"]}
    assert not changed, f"second run changed something: {changed}\n{second.output[-8000:]}"


def test_cluster_of_three_with_policy_and_no_guest(bed):
    status = json.loads(bed.exec("rabbit3", "rabbitmqctl", "cluster_status", "--formatter", "json").stdout)
    expected = sorted(f"rabbit@{h}" for h in BROKERS)
    assert sorted(status["running_nodes"]) == expected
    assert sorted(status["disk_nodes"]) == expected
    assert status["cluster_name"] == "warren"
    policies = mgmt(bed, "rabbit2", "policies/%2F")
    ha = [p for p in policies if p["name"] == "ha-all"]
    assert ha and ha[0]["definition"]["ha-mode"] == "all" and ha[0]["pattern"] == ".*"
    users = {u["name"]: u for u in mgmt(bed, "rabbit1", "users")}
    assert "guest" not in users
    assert "administrator" in str(users["admin"]["tags"])
    cookie = bed.exec("rabbit2", "stat", "-c", "%a %U", "/var/lib/rabbitmq/.erlang.cookie").stdout.split()
    assert cookie == ["400", "rabbitmq"]


def test_a_queue_is_mirrored_on_all_brokers(bed):
    mgmt(bed, "rabbit1", "queues/%2F/wans-mirrored", method="PUT", body={"durable": True})
    try:
        def mirrors():
            q = mgmt(bed, "rabbit1", "queues/%2F/wans-mirrored")
            return q if len(q.get("synchronised_slave_nodes", [])) == 2 else None
        wait_for("2 synchronised mirrors", mirrors, 60)
        rows = json.loads(bed.exec("rabbit2", "rabbitmqctl", "list_queues", "--quiet", "--formatter", "json",
                                   "name", "policy").stdout)
        assert {"name": "wans-mirrored", "policy": "ha-all"} in rows, rows
    finally:
        mgmt(bed, "rabbit1", "queues/%2F/wans-mirrored", method="DELETE")


def need_lb_vip(bed):
    if not (bed.lb_bin and bed.vip_bin):
        pytest.skip("warren-lb / warren-vip binaries not found (WARREN_LB_BIN, WARREN_VIP_BIN "
                    "or target/{debug,release}); only the broker part was converged")


def vip_holders(bed):
    return [h for h in LBS
            if f" {bed.vip}/" in bed.exec(h, "ip", "-o", "-4", "addr", "show", check=False).stdout]


def main_pid(bed, host, unit):
    return int(bed.exec(host, "systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip())


def test_lb_and_vip_run_unprivileged_and_one_host_owns_the_vip(bed):
    need_lb_vip(bed)
    for host in LBS:
        for unit, user in (("warren-lb", "warren-lb"), ("warren-vip", "warren-vip")):
            assert bed.exec(host, "systemctl", "is-active", unit, check=False).stdout.strip() == "active", \
                bed.exec(host, "journalctl", "-u", unit, "--no-pager", "-n", "30", check=False).stdout
            pid = main_pid(bed, host, unit)
            assert bed.exec(host, "ps", "-o", "user=", "-p", str(pid)).stdout.strip() == user
    holders = wait_for("the VIP on exactly one lb host", lambda: (lambda h: h if len(h) == 1 else None)(vip_holders(bed)), 60)
    assert holders == ["lb1"], "lb1 has the highest default priority (150)"


def amqp_roundtrip(host, queue, body):
    import pika

    params = pika.ConnectionParameters(host=host, port=5672, credentials=pika.PlainCredentials("admin", PASSWORD),
                                       connection_attempts=3, retry_delay=1, socket_timeout=10)
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue=queue, durable=True)
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
        method, _, got = ch.basic_get(queue, auto_ack=True)
        ch.queue_delete(queue)
        return got
    finally:
        conn.close()


def test_publish_and_consume_through_the_vip(bed):
    need_lb_vip(bed)
    got = wait_for("an AMQP round trip through the VIP",
                   lambda: amqp_roundtrip(bed.vip, "wans-vip-roundtrip", b"through-the-vip"), 60, interval=2)
    assert got == b"through-the-vip"


def test_config_change_reloads_without_restart(bed):
    need_lb_vip(bed)
    before = {h: main_pid(bed, h, "warren-lb") for h in LBS}
    try:
        run = logged_playbook("reload", "site.yml", bed, "--limit", "warren_lb", "-e", "warren_lb_check_inter=2s")
        assert run.returncode == 0, failures(run.output) + run.output[-3000:]
        assert "RUNNING HANDLER [warren_lb : Reload warren-lb]" in run.output
        assert "RUNNING HANDLER [warren_lb : Restart warren-lb]" not in run.output
        survived = {}
        for h in LBS:
            assert 'inter = "2s"' in bed.exec(h, "cat", "/etc/warren/lb.toml").stdout
            state = bed.exec(h, "systemctl", "is-active", "warren-lb", check=False).stdout.strip()
            survived[h] = state == "active" and main_pid(bed, h, "warren-lb") == before[h]
    finally:
        # the default back; a dead lb is started again by the reload handler
        back = logged_playbook("reload-back", "site.yml", bed, "--limit", "warren_lb")
    assert back.returncode == 0, failures(back.output)
    assert all(survived.values()), (
        f"warren-lb was restarted instead of reloaded on {[h for h, ok in survived.items() if not ok]}")
    for h in LBS:
        journal = bed.exec(h, "journalctl", "-u", "warren-lb", "--no-pager", check=False).stdout
        assert "reload ok: generation" in journal, journal[-2000:]


def test_rolling_restart_under_publishing_loses_nothing(bed):
    """rolling_restart.yml while a confirming publisher runs: every confirmed message
    is still in the mirrored queue afterwards (lost = 0)."""
    import pika

    via_vip = bool(bed.lb_bin and bed.vip_bin)
    endpoints = [bed.vip] if via_vip else [bed.ip(h) for h in BROKERS]
    queue = "wans-rolling"
    mgmt(bed, "rabbit1", f"queues/%2F/{queue}", method="PUT", body={"durable": True})
    wait_for("2 synchronised mirrors", lambda: len(
        mgmt(bed, "rabbit1", f"queues/%2F/{queue}").get("synchronised_slave_nodes", [])) == 2, 60)
    creds = pika.PlainCredentials("admin", PASSWORD)
    params = [pika.ConnectionParameters(host=e, port=5672, credentials=creds, socket_timeout=5,
                                        blocked_connection_timeout=10, heartbeat=5) for e in endpoints]
    confirmed, errors, stop = [], [], threading.Event()

    def publisher():
        n = 0
        while not stop.is_set():
            try:
                conn = pika.BlockingConnection(params)
                ch = conn.channel()
                ch.confirm_delivery()
                while not stop.is_set():
                    ch.basic_publish("", queue, str(n).encode(), pika.BasicProperties(delivery_mode=2),
                                     mandatory=True)
                    confirmed.append(n)  # basic_publish returned: the broker confirmed it
                    n += 1
                    time.sleep(0.02)
                conn.close()
            except Exception as exc:  # noqa: BLE001 - reconnect, the in-flight one is unconfirmed
                errors.append(repr(exc)[:200])
                n += 1
                stop.wait(0.5)

    thread = threading.Thread(target=publisher, daemon=True)
    thread.start()
    try:
        wait_for("the publisher to get confirms", lambda: len(confirmed) > 20, 60)
        run = logged_playbook("rolling_restart", "rolling_restart.yml", bed, timeout=1500)
    finally:
        stop.set()
        thread.join(30)
    # a publisher still running could confirm after the queue is read: a false "lost"
    assert not thread.is_alive(), "the publisher did not stop within 30 s"
    assert run.returncode == 0, failures(run.output) + run.output[-3000:]
    assert run.output.count("TASK [Restart rabbitmq-server]") == 3, "one restart task per broker (serial: 1)"
    assert "PLAY RECAP" in run.output
    # read the queue back (directly from a broker) and account for every confirmed message
    got = set()
    conn = pika.BlockingConnection(pika.ConnectionParameters(host=bed.ip("rabbit2"), credentials=creds))
    try:
        ch = conn.channel()
        while True:
            method, _, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            got.add(int(body))
        ch.queue_delete(queue)
    finally:
        conn.close()
    lost = sorted(set(confirmed) - got)
    print(f"rolling restart: {len(confirmed)} confirmed, {len(got)} in the queue, lost {len(lost)}, "
          f"{len(errors)} reconnects, via {'VIP' if via_vip else 'brokers'}, {run.seconds:.0f}s")
    assert len(confirmed) > 100
    assert not lost, f"lost {len(lost)} confirmed messages: {lost[:20]}"
