"""The converge suites' test bed: Debian systemd "VMs" (containers) reached over ssh,
and the inventory made by docs/ansible.md's own commands.

The containers come from the offline Debian base image of a suite (bookworm, trixie;
scripts/lib/docker.sh) plus systemd, sshd, python3, sudo and iptables
(tests/image/Dockerfile, one image per suite, tagged by suite and the Dockerfile's
hash); Ansible reaches them over ssh, like real VMs. Network: one 10.240.N.0/24 docker
network per bed, N free at creation (docker refuses an overlapping subnet, so
concurrent beds never share one); only our own containers' addresses are ever
contacted. Everything created here is named wans-N-* and removed at the end, also on
failure.
"""

import base64
import functools
import hashlib
import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

from conftest import ANSIBLE_DIR, REPO_DIR, run_logged, run_playbook
from docs_commands import SiteDirs
from warren_testkit import binary, poll, require_tool, run

IMAGE_DIR = ANSIBLE_DIR / "tests/image"
BROKERS = ["rabbit1", "rabbit2", "rabbit3"]
LBS = ["lb1", "lb2"]
EXAMPLE_NET = "10.240.10."


def node_image(suite):
    """The host image for a Debian suite; a changed Dockerfile builds a new one."""
    return f"localhost/warren-ansible-node:{suite}-" + hashlib.sha256((IMAGE_DIR / "Dockerfile").read_bytes()).hexdigest()[:12]


# The bed's docker and ssh commands: stdout and stderr as one stream, in the
# order a terminal shows them (what their failures and callers read).
sh = functools.partial(run, stderr=subprocess.STDOUT)


LOG_DIR = pathlib.Path(os.environ.get("WANS_LOG_DIR", "/tmp/wans-logs"))


class Bed:
    """One bed: its containers and inventory, and `docs`, the DocCommands its
    documented commands are taken from."""

    def __init__(self, tmp, docs, suite="bookworm"):
        self.tmp = tmp
        self.docs = docs
        self.suite = suite
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
        return self.run(name, self.site.substitute(self.docs.take(command)), **kw)

    def doc_on(self, host, command, name=None):
        """Run the documented command `command` on a broker (as its operator would)."""
        return self.exec(host, "sh", "-c", self.site.substitute(self.docs.take(command), name), check=False)

    def playbook(self, name, playbook, *args, inventory=None, timeout=1500):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        proc = run_playbook(playbook, inventory or self.site.inventory, *args, timeout=timeout,
                            extra_env={"ANSIBLE_VAULT_PASSWORD_FILE": str(self.site.vault_pass)},
                            log=LOG_DIR / f"{name}.log")
        proc.seconds = time.monotonic() - t0
        print(f"{name}: {proc.seconds:.0f}s, rc={proc.returncode}, log {LOG_DIR / name}.log")
        return proc


def docker_up(suite):
    lib = REPO_DIR / "scripts/lib/docker.sh"
    sh(["bash", "-c", f"source {lib} && docker_engine_up && docker_base_image {suite}"], timeout=900)
    image = node_image(suite)
    if sh(["docker", "image", "inspect", image], check=False).returncode != 0:
        sh(["docker", "build", "-q", "--build-arg", f"BASE=localhost/debian:{suite}", "-t", image, str(IMAGE_DIR)],
           timeout=900)


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
            "--label", "warren.area=ansible", node_image(b.suite)])
    key = b.tmp / "id"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    pub = (b.tmp / "id.pub").read_text().strip()
    for host in BROKERS + LBS:
        poll(f"systemd in {host}", lambda h=host: b.exec(
            h, "systemctl", "is-system-running", check=False).stdout.strip() in ("running", "degraded"), 120)
        b.exec(host, "sh", "-c", f"echo '{pub}' > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys")
    for host in BROKERS + LBS:
        poll(f"sshd in {host}", lambda h=host: socket.create_connection((b.ips[h], 22), 2).close() or True, 60)
    # The hosts' real keys: ansible and warren-drill check them, nothing is trusted blindly.
    b.known_hosts = b.tmp / "known_hosts"
    scan = poll("ssh host keys", lambda: (lambda out: out if out.count("\n") >= 5 else None)(
        sh(["ssh-keyscan", "-t", "ed25519", *b.ips.values()], check=False).stdout), 60)
    b.known_hosts.write_text(scan)
    return key


def make_inventory(b, key):
    """inventory/prod as docs/ansible.md makes it: its setup commands, then the edits
    it asks for (addresses, VIP, binaries) plus this machine's ssh settings."""
    b.site = SiteDirs(b.tmp / "site/inventory/prod", b.tmp / "site/warren-vault-pass")
    b.site.inventory.parent.mkdir(parents=True)
    setup = [b.docs.take(c) for c in (
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


BED_STATE = ("suite", "net", "prefix", "subnet", "containers", "ips", "known_hosts", "vip", "drill_bin", "password")


def save_bed(b):
    """WANS_KEEP: what WANS_REUSE needs to run tests again on the kept containers."""
    state = {k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(b).items() if k in BED_STATE}
    state.update(tmp=str(b.tmp), inventory=str(b.site.inventory), vault_pass=str(b.site.vault_pass))
    (b.tmp / "bed.json").write_text(json.dumps(state, indent=1))
    return b.tmp / "bed.json"


def load_bed(path, docs):
    state = json.loads(pathlib.Path(path).read_text())
    b = Bed(pathlib.Path(state.pop("tmp")), docs)
    b.site = SiteDirs(state.pop("inventory"), state.pop("vault_pass"))
    for k, v in state.items():
        setattr(b, k, pathlib.Path(v) if k == "known_hosts" else v)
    return b


def make_bed(tmp_path_factory, docs, suite, edit_inventory=None):
    """The five containers of `suite` and the docs' inventory (then `edit_inventory(b)`),
    for a module fixture to yield. WANS_KEEP=1 leaves them running (and prints a
    bed.json); WANS_REUSE=<bed.json> runs tests on such a kept bed instead of a new
    one, for debugging one test (it removes nothing)."""
    if os.environ.get("WANS_REUSE"):
        yield load_bed(os.environ["WANS_REUSE"], docs)
        return
    require_tool("docker")
    docker_up(suite)
    b = Bed(tmp_path_factory.mktemp("wans"), docs, suite)
    try:
        key = start_containers(b)
        make_inventory(b, key)
        if edit_inventory:
            edit_inventory(b)
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


def section_hosts(output, task):
    """{host: status} of one task's (or handler's) results, for every time it ran."""
    out = {}
    for block in re.split(rf"^(?:TASK|RUNNING HANDLER) \[{re.escape(task)}\]", output, flags=re.M)[1:]:
        block = re.split(r"^(?:TASK|RUNNING HANDLER|PLAY) ", block, maxsplit=1, flags=re.M)[0]
        for m in re.finditer(r"^(ok|changed|skipping|fatal|failed): \[(\S+?)\]", block, re.M):
            out[m.group(2)] = m.group(1)
    return out




def vip_holders(bed):
    return [h for h in LBS
            if f" {bed.vip}/" in bed.exec(h, "ip", "-o", "-4", "addr", "show", check=False).stdout]


def main_pid(bed, host, unit):
    return int(bed.exec(host, "systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip())


def amqp_roundtrip(bed, queue, body, arguments=None, keep=False, port=5672, ssl_options=None):
    """Declare `queue` (with `arguments`), publish `body` with a confirm and get it back,
    through the VIP (AMQPS with `ssl_options` and port 5671); the queue is deleted
    again unless `keep`."""
    import pika

    params = pika.ConnectionParameters(host=bed.vip, port=port, credentials=pika.PlainCredentials("admin", bed.password),
                                       connection_attempts=3, retry_delay=1, socket_timeout=10,
                                       ssl_options=ssl_options)
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue=queue, durable=True, arguments=arguments)
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
        method, _, got = ch.basic_get(queue, auto_ack=True)
        if not keep:
            ch.queue_delete(queue)
        return got
    finally:
        conn.close()


def tls_context(bed):
    """A client context trusting only the bed's CA (inventory/prod/tls/ca.pem)."""
    return ssl.create_default_context(cafile=str(bed.site.inventory / "tls/ca.pem"))


def peer_serial(address, port, ctx, server_hostname=None):
    """The serial of the certificate a new TLS connection to address:port is shown,
    verified by `ctx` against `server_hostname` (default: the address itself)."""
    with socket.create_connection((address, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname or address) as tls:
            return int(tls.getpeercert()["serialNumber"], 16)
