"""Converge site.yml on five systemd "VMs" (containers) the way docs/ansible.md says,
then idempotence, verify, day-2 operations and a drill.

The containers come from the offline Debian base image (scripts/lib/docker.sh) plus
systemd, sshd, python3, sudo and iptables (tests/image/Dockerfile); Ansible reaches
them over ssh, like real VMs. The inventory is made by the docs' own commands (copy of
inventory/example, vault.yml from `ansible-vault encrypt_string` with a password file),
then edited as the docs say (addresses, VIP, binaries). Every command of the docs' sh
blocks is run from docs_commands.DocCommands, so docs and tests cannot drift. Network:
one 10.240.N.0/24 docker network per run; only our own containers' addresses are ever
contacted. Everything created here is named wans-N-* and removed at the end, also on
failure.

Run alone:  python3 -m pytest -q ansible/tests/test_converge.py
"""

import base64
import hashlib
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request

import pytest

from conftest import ANSIBLE_DIR, REPO_DIR, run_logged, run_playbook
from docs_commands import DocCommands, SiteDirs
from publisher import ConfirmingPublisher, drain

# Runs by default; WARREN_ANSIBLE_CONVERGE=0 skips it for a quick static-only run.
pytestmark = pytest.mark.skipif(
    os.environ.get("WARREN_ANSIBLE_CONVERGE") == "0",
    reason="WARREN_ANSIBLE_CONVERGE=0: the five-container converge is skipped",
)

IMAGE_DIR = ANSIBLE_DIR / "tests/image"
# Tagged by the Dockerfile's content: a changed Dockerfile builds a new image.
NODE_IMAGE = "localhost/warren-ansible-node:" + hashlib.sha256((IMAGE_DIR / "Dockerfile").read_bytes()).hexdigest()[:12]
BROKERS = ["rabbit1", "rabbit2", "rabbit3"]
LBS = ["lb1", "lb2"]
EXAMPLE_NET = "10.240.10."
DOCS = DocCommands()
CONVERGE = "ansible-playbook -i inventory/prod site.yml"
MANUAL_SYNC_QUEUE = "wans-manual-sync"


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
    """A warren binary: env var (set by scripts/test) or target/{release,debug}."""
    candidates = [os.environ.get(env_name, "")]
    candidates += [str(REPO_DIR / "target" / p / name) for p in ("release", "debug")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail(f"{name} not found ({env_name} or target/{{release,debug}}/{name}); "
                f"scripts/test builds it with cargo build --workspace --bins")


LOG_DIR = pathlib.Path(os.environ.get("WANS_LOG_DIR", "/tmp/wans-logs"))


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

    def run(self, name, command, timeout=1500, extra_env=None):
        """A bash command on the controller in ansible/, output in WANS_LOG_DIR/<name>.log."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        env = {"ANSIBLE_VAULT_PASSWORD_FILE": str(self.site.vault_pass), **(extra_env or {})}
        t0 = time.monotonic()
        proc = run_logged(command, timeout=timeout, extra_env=env,
                          log=LOG_DIR / f"{name}.log")
        proc.seconds = time.monotonic() - t0
        print(f"{name}: {proc.seconds:.0f}s, rc={proc.returncode}, log {LOG_DIR / name}.log")
        return proc

    def doc(self, name, command, **kw):
        """Run the documented command `command` on the controller (placeholders replaced)."""
        return self.run(name, self.site.substitute(DOCS.take(command)), **kw)

    def doc_on(self, host, command, name=None):
        """Run the documented command `command` on a broker (as its operator would)."""
        return self.exec(host, "sh", "-c", self.site.substitute(DOCS.take(command), name), check=False)

    def playbook(self, name, playbook, *args, inventory=None, timeout=1500):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        proc = run_playbook(playbook, inventory or self.site.inventory, *args, timeout=timeout,
                            extra_env={"ANSIBLE_VAULT_PASSWORD_FILE": str(self.site.vault_pass)},
                            log=LOG_DIR / f"{name}.log")
        proc.seconds = time.monotonic() - t0
        print(f"{name}: {proc.seconds:.0f}s, rc={proc.returncode}, log {LOG_DIR / name}.log")
        return proc


def docker_up():
    lib = REPO_DIR / "scripts/lib/docker.sh"
    sh(["bash", "-c", f"source {lib} && docker_engine_up && docker_base_image"], timeout=900)
    if sh(["docker", "image", "inspect", NODE_IMAGE], check=False).returncode != 0:
        sh(["docker", "build", "-q", "-t", NODE_IMAGE, str(IMAGE_DIR)], timeout=900)


def start_containers(b):
    # a /24 of 10.240.0.0/16 not used by another run (10.240.10.0/24 is the example's)
    for n in [100 + (os.getpid() + i) % 150 for i in range(150)]:
        name = f"wans-{n}"
        r = sh(["docker", "network", "create", "--subnet", f"10.240.{n}.0/24", name], check=False)
        if r.returncode == 0:
            b.net, b.prefix, b.subnet = name, name, n
            break
    else:
        pytest.fail("no free 10.240.N.0/24 for a docker network")
    for host in BROKERS + LBS:
        ip = f"10.240.{b.subnet}.{11 + BROKERS.index(host) if host in BROKERS else 21 + LBS.index(host)}"
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
    key = b.tmp / "id"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    pub = (b.tmp / "id.pub").read_text().strip()
    for host in BROKERS + LBS:
        wait_for(f"systemd in {host}", lambda h=host: b.exec(
            h, "systemctl", "is-system-running", check=False).stdout.strip() in ("running", "degraded"), 120)
        b.exec(host, "sh", "-c", f"echo '{pub}' > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys")
    for host in BROKERS + LBS:
        wait_for(f"sshd in {host}", lambda h=host: socket.create_connection((b.ips[h], 22), 2).close() or True, 60)
    # The hosts' real keys: ansible and warren-drill check them, nothing is trusted blindly.
    b.known_hosts = b.tmp / "known_hosts"
    scan = wait_for("ssh host keys", lambda: (lambda out: out if out.count("\n") >= 5 else None)(
        sh(["ssh-keyscan", "-t", "ed25519", *b.ips.values()], check=False).stdout), 60)
    b.known_hosts.write_text(scan)
    return key


def make_inventory(b, key):
    """inventory/prod as docs/ansible.md makes it: its setup commands, then the edits
    it asks for (addresses, VIP, binaries) plus this machine's ssh settings."""
    b.site = SiteDirs(b.tmp / "site/inventory/prod", b.tmp / "site/warren-vault-pass")
    b.site.inventory.parent.mkdir(parents=True)
    setup = [DOCS.take(c) for c in (
        "cp -r inventory/example inventory/prod",
        "(umask 077 && openssl rand -hex 32 > ~/.warren-vault-pass)",
        "export ANSIBLE_VAULT_PASSWORD_FILE=~/.warren-vault-pass",
        'ansible-vault encrypt_string --name vault_rabbitmq_cluster_erlang_cookie "$(openssl rand -hex 32)"'
        " > inventory/prod/group_vars/all/vault.yml",
        'ansible-vault encrypt_string --name vault_rabbitmq_cluster_admin_password "$(openssl rand -hex 16)"'
        " >> inventory/prod/group_vars/all/vault.yml",
    )]
    proc = b.run("inventory-setup", "\n".join(b.site.substitute(c) for c in setup), timeout=300)
    assert proc.returncode == 0, proc.output[-3000:]
    inv = b.site.inventory
    vault = (inv / "group_vars/all/vault.yml").read_text()
    assert vault.count("$ANSIBLE_VAULT;1.1;AES256") == 2 and "example" not in vault, vault
    # "set your addresses in hosts.yml, the VIP in group_vars/warren_lb.yml"
    for rel in ("hosts.yml", "group_vars/warren_lb.yml"):
        f = inv / rel
        f.write_text(f.read_text().replace(EXAMPLE_NET, f"10.240.{b.subnet}."))
    b.vip = f"10.240.{b.subnet}.100"
    assert f"warren_vip_address: {b.vip}/24" in (inv / "group_vars/warren_lb.yml").read_text()
    b.drill_bin = binary("WARREN_DRILL_BIN", "warren-drill")
    with open(inv / "group_vars/warren_lb.yml", "a") as f:
        f.write(f"warren_lb_binary_src: {binary('WARREN_LB_BIN', 'warren-lb')}\n"
                f"warren_vip_binary_src: {binary('WARREN_VIP_BIN', 'warren-vip')}\n")
    with open(inv / "group_vars/all/main.yml", "a") as f:
        f.write(f"ansible_ssh_private_key_file: {key}\n"
                f"ansible_ssh_common_args: -o UserKnownHostsFile={b.known_hosts} -o StrictHostKeyChecking=yes\n"
                f"drill_binary: {b.drill_bin}\n"
                f"drill_ssh_known_hosts: {b.known_hosts}\n"
                "drill_duration: 20s\n")
    # A short grace keeps the suite quick: every restart leaves the manual-sync
    # queue behind until the wait requests sync_queue.
    with open(inv / "group_vars/rabbitmq.yml", "a") as f:
        f.write("rabbitmq_cluster_sync_grace: 5\n")
    # The secret as the vault holds it (and proof that it decrypts).
    out = b.run("vault-read", f"ansible -i {inv} localhost -m ansible.builtin.debug "
                "-a var=rabbitmq_cluster_admin_password", timeout=120)
    assert out.returncode == 0, out.output[-2000:]
    b.password = json.JSONDecoder().raw_decode(out.output.split("=>", 1)[1].lstrip())[0][
        "rabbitmq_cluster_admin_password"]
    assert re.fullmatch(r"[0-9a-f]{32}", b.password), "openssl rand -hex 16 from the docs"


BED_STATE = ("net", "prefix", "subnet", "containers", "ips", "known_hosts", "vip", "drill_bin", "password")


def save_bed(b):
    """WANS_KEEP: what WANS_REUSE needs to run tests again on the kept containers."""
    state = {k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(b).items() if k in BED_STATE}
    state.update(tmp=str(b.tmp), inventory=str(b.site.inventory), vault_pass=str(b.site.vault_pass))
    (b.tmp / "bed.json").write_text(json.dumps(state, indent=1))
    return b.tmp / "bed.json"


def load_bed(path):
    state = json.loads(pathlib.Path(path).read_text())
    b = Bed(pathlib.Path(state.pop("tmp")))
    b.site = SiteDirs(state.pop("inventory"), state.pop("vault_pass"))
    for k, v in state.items():
        setattr(b, k, pathlib.Path(v) if k == "known_hosts" else v)
    return b


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    """The five containers and the docs' inventory. WANS_KEEP=1 leaves them running
    (and prints a bed.json); WANS_REUSE=<bed.json> runs tests on such a kept bed
    instead of a new one, for debugging one test (it removes nothing)."""
    if os.environ.get("WANS_REUSE"):
        yield load_bed(os.environ["WANS_REUSE"])
        return
    if shutil.which("docker") is None:
        pytest.fail("docker is not installed (scripts/install-deps installs docker.io)")
    docker_up()
    b = Bed(tmp_path_factory.mktemp("wans"))
    try:
        key = start_containers(b)
        make_inventory(b, key)
        yield b
    finally:
        if os.environ.get("WANS_KEEP"):
            state = save_bed(b) if hasattr(b, "password") else "(no inventory yet)"
            print(f"WANS_KEEP set: leaving {b.containers} and {b.net}; WANS_REUSE={state}")
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


def failures(output):
    return "\n".join(l for l in output.splitlines() if l.startswith(("fatal:", "failed:")))[-4000:]


def mgmt(bed, host, path, method="GET", body=None):
    req = urllib.request.Request(f"http://{bed.ip(host)}:15672/api/{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Basic " + base64.b64encode(f"admin:{bed.password}".encode()).decode())
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = resp.read()
        return json.loads(data) if data else None


def test_converge_then_idempotent(bed):
    first = bed.doc("converge", CONVERGE)
    assert first.returncode == 0, failures(first.output) + first.output[-3000:]
    assert sum(r["changed"] for r in recap(first.output).values()) > 0
    second = bed.doc("idempotence", CONVERGE)
    assert second.returncode == 0, failures(second.output) + second.output[-3000:]
    rc = recap(second.output)
    assert set(BROKERS + LBS) <= set(rc), second.output[-3000:]
    changed = {h: r["changed"] for h, r in rc.items() if r["changed"]}
    assert not changed, f"second run changed something: {changed}\n{second.output[-8000:]}"
    preview = bed.doc("check-diff", "ansible-playbook -i inventory/prod site.yml --check --diff")
    assert preview.returncode == 0, failures(preview.output) + preview.output[-3000:]
    changed = {h: r["changed"] for h, r in recap(preview.output).items() if r["changed"]}
    assert not changed, f"--check --diff on a converged site reports changes: {changed}\n{preview.output[-6000:]}"


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
    cookie = bed.exec("rabbit2", "stat", "-c", "%a %U %s", "/var/lib/rabbitmq/.erlang.cookie").stdout.split()
    assert cookie == ["400", "rabbitmq", "64"], "the vault's cookie: openssl rand -hex 32"


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


def vip_holders(bed):
    return [h for h in LBS
            if f" {bed.vip}/" in bed.exec(h, "ip", "-o", "-4", "addr", "show", check=False).stdout]


def main_pid(bed, host, unit):
    return int(bed.exec(host, "systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip())


def test_lb_and_vip_run_unprivileged_and_one_host_owns_the_vip(bed):
    for host in LBS:
        for unit, user in (("warren-lb", "warren-lb"), ("warren-vip", "warren-vip")):
            assert bed.exec(host, "systemctl", "is-active", unit, check=False).stdout.strip() == "active", \
                bed.exec(host, "journalctl", "-u", unit, "--no-pager", "-n", "30", check=False).stdout
            pid = main_pid(bed, host, unit)
            assert bed.exec(host, "ps", "-o", "user=", "-p", str(pid)).stdout.strip() == user
    holders = wait_for("the VIP on exactly one lb host", lambda: (lambda h: h if len(h) == 1 else None)(vip_holders(bed)), 60)
    assert holders == ["lb1"], "lb1 has the highest default priority (150)"


def amqp_roundtrip(bed, queue, body):
    import pika

    params = pika.ConnectionParameters(host=bed.vip, port=5672, credentials=pika.PlainCredentials("admin", bed.password),
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
    got = wait_for("an AMQP round trip through the VIP",
                   lambda: amqp_roundtrip(bed, "wans-vip-roundtrip", b"through-the-vip"), 60, interval=2)
    assert got == b"through-the-vip"


def test_config_change_reloads_without_restart(bed):
    before = {h: main_pid(bed, h, "warren-lb") for h in LBS}
    try:
        run = bed.playbook("reload", "site.yml", "--limit", "warren_lb", "-e", "warren_lb_check_inter=2s")
        assert run.returncode == 0, failures(run.output) + run.output[-3000:]
        assert "RUNNING HANDLER [warren_lb : Reload warren-lb]" in run.output
        assert "RUNNING HANDLER [warren_lb : Restart warren-lb]" not in run.output
        survived = {}
        for h in LBS:
            assert 'inter = "2s"' in bed.exec(h, "cat", "/etc/warren/lb.toml").stdout
            state = bed.exec(h, "systemctl", "is-active", "warren-lb", check=False).stdout.strip()
            survived[h] = state == "active" and main_pid(bed, h, "warren-lb") == before[h]
    finally:
        # the documented lb-hosts run puts the default back; a dead lb is started again
        back = bed.doc("reload-back", "ansible-playbook -i inventory/prod site.yml --limit warren_lb")
    assert back.returncode == 0, failures(back.output)
    assert all(survived.values()), (
        f"warren-lb was restarted instead of reloaded on {[h for h, ok in survived.items() if not ok]}")
    for h in LBS:
        journal = bed.exec(h, "journalctl", "-u", "warren-lb", "--no-pager", check=False).stdout
        assert "reload ok: generation" in journal, journal[-2000:]


UNIT = "/etc/systemd/system/warren-lb.service"


def process_environment(bed, host, pid):
    raw = bed.exec(host, "cat", f"/proc/{pid}/environ").stdout
    return [e for e in raw.split("\0") if e]


def test_a_changed_unit_is_applied_before_the_restart(bed):
    """Issue 21, defect 1: a unit that differs from the template is rewritten, and the
    restarted warren-lb runs the unit on disk, not systemd's stale copy of the old one."""
    host = "lb1"
    bed.exec(host, "sed", "-i", r"/^\[Service\]/a Environment=MARK=stale", UNIT)
    bed.exec(host, "systemctl", "daemon-reload")
    # the fault: systemd now holds a definition with MARK, as after a hand edit
    assert "MARK=stale" in bed.exec(host, "systemctl", "show", "-p", "Environment", "warren-lb").stdout
    before = main_pid(bed, host, "warren-lb")
    run = bed.playbook("stale-unit", "site.yml", "--limit", host)
    assert run.returncode == 0, failures(run.output) + run.output[-3000:]
    reload_at = run.output.find("RUNNING HANDLER [warren_lb : Reload systemd units for warren-lb]")
    restart_at = run.output.find("RUNNING HANDLER [warren_lb : Restart warren-lb]")
    assert 0 <= reload_at < restart_at, f"handlers ran out of order:\n{run.output[-5000:]}"
    assert "MARK" not in bed.exec(host, "cat", UNIT).stdout, "the template replaced the edited unit"
    after = wait_for("warren-lb active again", lambda: bed.exec(
        host, "systemctl", "is-active", "warren-lb", check=False).stdout.strip() == "active"
        and main_pid(bed, host, "warren-lb"), 60)
    assert after != before, "the unit change restarted warren-lb"
    env = process_environment(bed, host, after)
    assert not [e for e in env if e.startswith("MARK=")], f"the running warren-lb has the old unit's environment: {env}"
    assert "MARK" not in bed.exec(host, "systemctl", "show", "-p", "Environment", "warren-lb").stdout
    assert bed.exec(host, "systemctl", "show", "-p", "NeedDaemonReload", "--value", "warren-lb").stdout.strip() == "no"


def section_hosts(output, task):
    """{host: status} of one task's results, for every time the task ran."""
    out = {}
    for block in output.split(f"TASK [{task}]")[1:]:
        for m in re.finditer(r"^(ok|changed|skipping|fatal|failed): \[(\S+?)\]", block.split("\nTASK [")[0], re.M):
            out[m.group(2)] = m.group(1)
    return out


@pytest.fixture
def manual_sync_queue(bed):
    """A mirrored queue with ha-sync-mode manual holding 50 messages: after each broker
    restart its mirror there stays unsynchronised until someone requests sync_queue
    (what happens to any queue under rabbitmq-server#8974)."""
    bed.exec("rabbit1", "rabbitmqctl", "set_policy", "--priority", "1", "--apply-to", "queues", MANUAL_SYNC_QUEUE,
             f"^{MANUAL_SYNC_QUEUE}$", json.dumps({"ha-mode": "all", "ha-sync-mode": "manual",
                                                   "ha-promote-on-shutdown": "when-synced",
                                                   "ha-promote-on-failure": "when-synced"}))
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=bed.ip("rabbit2"), credentials=pika.PlainCredentials("admin", bed.password)))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(MANUAL_SYNC_QUEUE, durable=True)
    for i in range(50):
        ch.basic_publish("", MANUAL_SYNC_QUEUE, str(i).encode(), pika.BasicProperties(delivery_mode=2))
    conn.close()
    wait_for("the manual-sync queue on all brokers", lambda: len(
        mgmt(bed, "rabbit1", f"queues/%2F/{MANUAL_SYNC_QUEUE}").get("synchronised_slave_nodes", [])) == 2, 60)
    yield MANUAL_SYNC_QUEUE
    bed.exec("rabbit1", "rabbitmqctl", "sync_queue", MANUAL_SYNC_QUEUE, check=False)
    got = drain(bed.ip("rabbit2"), MANUAL_SYNC_QUEUE, "admin", bed.password)
    bed.exec("rabbit1", "rabbitmqctl", "clear_policy", MANUAL_SYNC_QUEUE, check=False)
    assert got == set(range(50)), f"the manual-sync queue lost messages: {sorted(set(range(50)) - got)}"


def test_rolling_restarts_under_publishing_lose_nothing(bed, manual_sync_queue):
    """The documented rolling restart, then the documented upgrade run, back to back,
    while a confirming publisher runs through the VIP: every confirmed message is still
    in the mirrored queue afterwards, and the queue that only syncs on request was
    synchronised by the wait after every broker (issue 21, defect 2)."""
    queue = "wans-rolling"
    mgmt(bed, "rabbit1", f"queues/%2F/{queue}", method="PUT", body={"durable": True})
    wait_for("2 synchronised mirrors", lambda: len(
        mgmt(bed, "rabbit1", f"queues/%2F/{queue}").get("synchronised_slave_nodes", [])) == 2, 60)
    pub = ConfirmingPublisher([bed.vip], queue, "admin", bed.password).start()
    runs = []
    try:
        wait_for("the publisher to get confirms", lambda: len(pub.confirmed) > 20, 60)
        for name, command in (
                ("rolling_restart", "ansible-playbook -i inventory/prod rolling_restart.yml"),
                ("rolling_upgrade",
                 "ansible-playbook -i inventory/prod rolling_restart.yml -e rabbitmq_cluster_upgrade=true")):
            run = bed.doc(name, command)
            runs.append(run)
            if run.returncode != 0:
                break
    finally:
        pub.stop()
    for run in runs:
        assert run.returncode == 0, failures(run.output) + run.output[-3000:]
        assert run.output.count("TASK [rabbitmq_cluster : Restart rabbitmq-server]") == 3, "one broker at a time"
        requested = section_hosts(run.output, "rabbitmq_cluster : Show the sync requests")
        assert requested == {h: "ok" for h in BROKERS}, (
            f"the wait requested sync_queue only on {requested}:\n{run.output[-5000:]}")
        assert f"queue '{manual_sync_queue}' in vhost '/'" in run.output
    assert len(runs) == 2
    got = drain(bed.ip("rabbit2"), queue, "admin", bed.password)
    lost = pub.lost(got)
    print(f"two rolling restarts: {len(pub.confirmed)} confirmed, {len(got)} in the queue, lost {len(lost)}, "
          f"{len(pub.errors)} reconnects, {sum(r.seconds for r in runs):.0f}s")
    assert len(pub.confirmed) > 100
    assert not lost, f"lost {len(lost)} confirmed messages: {lost[:20]}"
    q = mgmt(bed, "rabbit1", f"queues/%2F/{manual_sync_queue}")
    assert len(q.get("synchronised_slave_nodes", [])) == 2, q


def test_sync_timeout_from_the_inventory_stops_naming_the_queue(bed, manual_sync_queue):
    """rabbitmq_cluster_sync_timeout set in the inventory governs the wait; at the
    timeout the run stops, naming the queue still behind and how far, and leaves the
    other brokers untouched. (grace > timeout: no sync is requested, so the queue
    that only syncs on request stays behind.)"""
    short = bed.tmp / "site/inventory/short-timeout"
    shutil.rmtree(short, ignore_errors=True)
    shutil.copytree(bed.site.inventory, short)
    group = short / "group_vars/rabbitmq.yml"
    group.write_text(group.read_text().replace("rabbitmq_cluster_sync_grace: 5\n", "")
                     + "rabbitmq_cluster_sync_timeout: 20\nrabbitmq_cluster_sync_grace: 600\n")
    run = bed.playbook("sync_timeout", "rolling_restart.yml", inventory=short, timeout=400)
    assert run.returncode != 0, run.output[-3000:]
    fail = failures(run.output)
    failed_task = run.output.split("fatal: [rabbit1]")[0].rsplit("TASK [", 1)[-1]
    assert failed_task.startswith("rabbitmq_cluster : Wait until every mirrored queue is synchronised again]"), \
        run.output[-4000:]
    assert "still not synchronised after" in fail and "(rabbitmq_cluster_sync_timeout = 20 s)" in fail, fail
    assert f"queue '{manual_sync_queue}' in vhost '/': 1 of 2 mirrors synchronised (behind: rabbit@rabbit1" in fail, fail
    assert "the queue holds 50 messages" in fail, fail
    assert not re.search(r"retr(y|ies)|attempts", fail), fail
    assert run.output.count("TASK [rabbitmq_cluster : Restart rabbitmq-server]") == 1, "rabbit2, rabbit3 untouched"
    status = json.loads(bed.exec("rabbit2", "rabbitmqctl", "cluster_status", "--formatter", "json").stdout)
    assert len(status["running_nodes"]) == 3, status


def drill_report_path(output):
    m = re.search(r"PASS; report: (\S+drill-report\.json)", output)
    return pathlib.Path(m.group(1)) if m else None


def test_the_documented_drill_passes_and_reports_outside_the_checkout(bed):
    """Issue 21, defect 3: the docs' drill command runs a real warren-drill fault over
    ssh (identity and known_hosts from the inventory) and writes its report to a
    temporary directory."""
    DOCS.take("cargo build --release -p warren-drill")  # here: scripts/test's debug build (bed.drill_bin)
    run = bed.doc("drill", "ansible-playbook -i inventory/prod drill.yml -e drill_fault=crash", timeout=600)
    assert run.returncode == 0, failures(run.output) + run.output[-4000:]
    report = drill_report_path(run.output)
    assert report and report.is_file(), run.output[-3000:]
    try:
        assert REPO_DIR not in report.parents, f"the report went into the checkout: {report}"
        data = json.loads(report.read_text())
        accounting = data["accounting"]
        print(f"drill: {json.dumps(accounting)[:400]}, master {data['master_before']} -> {data['master_after']}")
        assert accounting["lost"] == 0 and accounting["confirmed"] > 0, accounting
        assert data["fault"] == "crash" and data["target"].startswith("ssh"), data["target"]
        # PASS (exit 0) includes warren-drill's own check that the fault took effect
        # (INVALID, exit 3, otherwise); the report says what its witness saw.
        assert data["fault_effect"]["took_effect"] is True, data["fault_effect"]
    finally:
        shutil.rmtree(report.parent, ignore_errors=True)
    assert not (ANSIBLE_DIR / "drill-report.json").exists()


def test_a_failing_drill_shows_warren_drills_stderr(bed):
    empty = bed.tmp / "empty_known_hosts"
    empty.write_text("")
    run = bed.playbook("drill-fails", "drill.yml", "-e", "drill_fault=crash", "-e", f"drill_ssh_known_hosts={empty}",
                       timeout=300)
    assert run.returncode != 0, run.output[-3000:]
    fail = failures(run.output)
    assert "warren-drill could not run the drill (exit 2); stderr: warren-drill: error:" in fail, fail
    assert "Host key verification failed" in fail, fail
    assert "Remove the temporary report directory when warren-drill wrote nothing" in run.output
    assert section_hosts(run.output, "drill : Remove the temporary report directory when warren-drill wrote nothing") \
        == {"localhost": "changed"}, run.output[-3000:]


def lb_servers(bed, host):
    cfg = tomllib.loads(bed.exec(host, "cat", "/etc/warren/lb.toml").stdout)
    return [s["address"] for s in cfg["backend"][0]["server"]]


def test_remove_and_add_a_broker_as_documented(bed):
    """Day-2: remove rabbit3 (stop, forget, inventory without it, lb hosts), then add it
    back as a fresh host (its data wiped, as a new VM would be) with the docs' commands."""
    gone = "rabbit3"
    hosts = bed.site.inventory / "hosts.yml"
    full = hosts.read_text()
    stopped = bed.doc_on(gone, "systemctl stop rabbitmq-server")
    assert stopped.returncode == 0, stopped.stdout
    forgot = bed.doc_on("rabbit1", "rabbitmqctl forget_cluster_node rabbit@<name>", name=gone)
    assert forgot.returncode == 0, forgot.stdout
    try:
        hosts.write_text(re.sub(rf"^\s+{gone}:\n\s+ansible_host: \S+\n", "", full, flags=re.M))
        assert gone not in hosts.read_text()
        lbs = bed.doc("remove-broker-lb", "ansible-playbook -i inventory/prod site.yml --limit warren_lb")
        assert lbs.returncode == 0, failures(lbs.output)
        assert bed.ip(gone) + ":5672" not in lb_servers(bed, "lb1")
        assert len(lb_servers(bed, "lb2")) == 2
    finally:
        hosts.write_text(full)
    bed.exec(gone, "rm", "-rf", "/var/lib/rabbitmq/mnesia")
    add = bed.doc("add-broker", "ansible-playbook -i inventory/prod site.yml --limit 'rabbitmq:warren_lb'")
    assert add.returncode == 0, failures(add.output) + add.output[-3000:]
    assert section_hosts(add.output, "rabbitmq_cluster : Join the cluster").get(gone) == "changed", add.output[-5000:]
    status = bed.doc_on("rabbit2", "rabbitmqctl cluster_status")
    assert status.returncode == 0, status.stdout
    running = status.stdout.split("Running Nodes", 1)[1].split("\n\n", 1)[1].split("\n\n", 1)[0]
    assert sorted(running.split()) == sorted(f"rabbit@{h}" for h in BROKERS), status.stdout
    assert len(lb_servers(bed, "lb1")) == 3


def test_every_documented_command_was_run(bed):
    missing = DOCS.not_taken()
    assert not missing, f"docs/ansible.md commands the suite never ran: {missing}"
