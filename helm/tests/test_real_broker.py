"""Real parts: boot the apt rabbitmq-server (installed by scripts/install-deps) with the
chart's own files — setup.sh output (cookie, definitions), rabbitmq.conf, enabled_plugins,
start.sh — then run the chart's prestop.sh against it with the real rabbitmq-upgrade.

Only Kubernetes peer discovery is replaced (there is no API server here): the node runs
alone on loopback ports, with a private epmd, and everything is stopped by pid/process
group afterwards, also on failure."""

import base64
import contextlib
import glob
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import SCENARIOS, STS, configmap_file, render
from test_scripts import lay_out, relocate
from warren_testkit import poll

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
PASSWORD = 'Real"Pa\\ss&|w0rd'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, user="admin", password=PASSWORD, method="GET", tls=None):
    """A management API call; with `tls` (an ssl.SSLContext) over HTTPS to localhost."""
    scheme, host = ("https", "localhost") if tls else ("http", "127.0.0.1")
    req = urllib.request.Request(f"{scheme}://{host}:{port}{path}", method=method)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=5, context=tls) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def stop_group(proc, timeout=60, sig=signal.SIGTERM):
    """Stop the process group we started (start_new_session=True) and reap it."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# The pod's listeners, moved to free loopback ports: rabbitmq.conf key -> the lines
# that replace it for port P.
LOOPBACK = {
    "listeners.tcp.default": lambda p: [f"listeners.tcp.default = 127.0.0.1:{p}"],
    "listeners.ssl.default": lambda p: [f"listeners.ssl.default = 127.0.0.1:{p}"],
    "management.tcp.port": lambda p: ["management.tcp.ip = 127.0.0.1", f"management.tcp.port = {p}"],
    "management.ssl.port": lambda p: ["management.ssl.ip = 127.0.0.1", f"management.ssl.port = {p}"],
    "prometheus.tcp.port": lambda p: ["prometheus.tcp.ip = 127.0.0.1", f"prometheus.tcp.port = {p}"],
    "prometheus.ssl.port": lambda p: ["prometheus.ssl.ip = 127.0.0.1", f"prometheus.ssl.port = {p}"],
}


@contextlib.contextmanager
def booted(tmp_path, values, tls=None):
    """The apt rabbitmq-server started by the chart's start.sh from the files the chart
    renders for `values` (setup.sh run first), on loopback ports. `tls`: an
    ssl.SSLContext trusting the CA of the certificates already in tmp_path/tls, used
    to await the HTTPS management API when the render has no plain one."""
    if not (os.path.exists(SERVER) and glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*")):
        pytest.fail(f"Debian's rabbitmq-server is not installed ({SERVER} or its lib dir is "
                    "missing): scripts/install-deps installs it")
    r = render(values)
    lay_out(tmp_path, r, PASSWORD)
    subprocess.run(["sh", str(tmp_path / "config" / "setup.sh")], check=True, timeout=30)

    ports, conf = {}, []
    for line in (tmp_path / "etc" / "rabbitmq.conf").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key.startswith("cluster_formation."):
            continue  # no API server here
        if key in LOOPBACK:
            ports[key] = free_port()
            conf += LOOPBACK[key](ports[key])
            continue
        conf.append(line)
    (tmp_path / "etc" / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
    (tmp_path / "log").mkdir()
    dist, epmd_port = free_port(), free_port()
    mgmt = ports.get("management.tcp.port") or ports["management.ssl.port"]

    env = dict(
        os.environ,
        HOME=str(tmp_path / "data"),
        # the real CLI scripts, not Debian's /usr/sbin wrappers (they switch user and HOME)
        PATH=f"/usr/lib/rabbitmq/bin:{os.environ['PATH']}",
        RABBITMQ_CONFIG_FILE=str(tmp_path / "etc" / "rabbitmq.conf"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(tmp_path / "etc" / "enabled_plugins"),
        RABBITMQ_MNESIA_BASE=str(tmp_path / "data" / "mnesia"),
        RABBITMQ_LOG_BASE=str(tmp_path / "log"),
        RABBITMQ_NODENAME=f"whelm{os.getpid()}@localhost",
        RABBITMQ_DIST_PORT=str(dist),
        ERL_EPMD_PORT=str(epmd_port),
        RABBITMQ_PID_FILE=str(tmp_path / "rabbit.pid"),
    )
    env.pop("RABBITMQ_USE_LONGNAME", None)
    epmd = subprocess.Popen(["epmd", "-port", str(epmd_port)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = open(tmp_path / "server.log", "w")
    node = None
    try:
        # wait for our epmd, or the node would spawn a detached one of its own
        poll("our epmd", lambda: epmd.poll() is None and socket.create_connection(
            ("127.0.0.1", epmd_port), timeout=1).close() is None, timeout=30, interval=0.1)
        node = subprocess.Popen(["sh", str(tmp_path / "config" / "start.sh")], env=env,
                                start_new_session=True, stdout=log, stderr=subprocess.STDOUT)

        def up():
            assert node.poll() is None, "broker exited:\n" + (tmp_path / "server.log").read_text()[-4000:]
            return http(mgmt, "/api/overview", tls=tls)[0] == 200

        poll("the broker's management API", up, timeout=180, interval=0.5)
        yield {"tmp": tmp_path, "env": env, "mgmt": mgmt, "ports": ports, "render": r}
    finally:
        if node is not None:
            stop_group(node, sig=signal.SIGKILL)  # a throw-away node: no need for a clean stop
        log.close()
        stop_group(epmd, timeout=10)


@pytest.fixture
def broker(tmp_path):
    with booted(tmp_path, SCENARIOS["mirrored"]) as b:
        b["amqp"] = b["ports"]["listeners.tcp.default"]
        yield b


def test_real_broker_takes_chart_definitions_and_prestop(broker):
    mgmt = broker["mgmt"]
    # the admin user from the Secret, with a password full of shell/sed/JSON specials
    status, me = http(mgmt, "/api/whoami")
    assert status == 200 and me["name"] == "admin"
    assert "administrator" in (me["tags"] if isinstance(me["tags"], list) else me["tags"].split(","))
    assert http(mgmt, "/api/whoami", password="wrong")[0] == 401
    assert http(mgmt, "/api/whoami", user="guest", password="guest")[0] == 401
    # the mirrored-mode HA policy. The node imports the definitions file while its
    # management API already answers (the users before the policies), so the policy is
    # awaited, not expected at the first answer.
    def ha_all():
        status, policies = http(mgmt, "/api/policies/%2F")
        assert status == 200
        return [p for p in policies if p["name"] == "ha-all"]

    (policy,) = poll("the ha-all policy from the chart's definitions", ha_all, timeout=60)
    assert policy["definition"] == {"ha-mode": "all", "ha-sync-mode": "automatic"}
    assert policy["apply-to"] == "queues"
    # the plugins of enabled_plugins are running
    status, overview = http(mgmt, "/api/overview")
    assert status == 200
    # preStop with the real rabbitmq-upgrade: waits succeed on a healthy node, drain
    # suspends the AMQP listener
    tmp = broker["tmp"]
    (tmp / "pod-info" / "skip-prestop-checks").write_text("")
    script = configmap_file(broker["render"], f"{STS}-config", "prestop.sh").replace("T=3000", "T=60")
    (tmp / "prestop-real.sh").write_text(relocate(script, tmp))
    p = subprocess.run(["sh", str(tmp / "prestop-real.sh")], env=broker["env"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "gave up" not in p.stdout, p.stdout
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", broker["amqp"]), timeout=2).close()
        except OSError:
            break  # listener suspended by drain
        assert time.monotonic() < deadline, "AMQP listener still open after drain"
        time.sleep(0.5)
