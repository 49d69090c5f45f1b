"""Fixtures for the compose suite: a real Docker engine, warren's images
(built by compose/build-images, cached), and compose projects that are torn
down (containers, networks, volumes) even when a test fails.

Everything this suite creates is named ``warrentest*`` (projects, containers,
secrets directories) or labelled ``org.warren.test``; nothing else on the
engine is touched.
"""

import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
import base64

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
from warren_testkit import poll, require_tool, run  # noqa: E402  (the suites' shared helpers)
COMPOSE_FILE = os.path.join(ROOT, "compose", "docker-compose.yml")
TAG = os.environ.get("WARREN_TEST_TAG", "test")
# One /24 per stack inside the compose range 10.230.0.0/16 (the demo uses
# 10.230.0): a test run and a demo can share the engine.
NETS = {"mirrored": "10.230.1", "quorum": "10.230.2", "quorum-4.0": "10.230.40",
        "quorum-4.0-khepri": "10.230.44"}


@pytest.fixture(scope="session")
def docker_engine():
    require_tool("docker")
    require_tool("docker-compose")
    p = run(["docker", "info"], check=False, timeout=30)
    if p.returncode != 0:
        pytest.fail(
            "no Docker engine answers; start one (scripts/test does it via "
            "scripts/lib/docker.sh docker_engine_up): " + p.stderr.strip()[-300:]
        )
    return True


@pytest.fixture(scope="session")
def broker_image(docker_engine):
    """Only the broker image (bad-input tests need no Rust binaries)."""
    env = dict(os.environ, WARREN_TAG=TAG)
    run([os.path.join(ROOT, "compose", "build-images"), "--tag", TAG, "--only", "broker"],
        env=env, timeout=1800)
    return TAG


@pytest.fixture(scope="session")
def broker_image40(docker_engine):
    """Only the 4.0 broker image, warren/broker:TAG-4.0."""
    env = dict(os.environ, WARREN_TAG=TAG)
    run([os.path.join(ROOT, "compose", "build-images"), "--tag", TAG, "--only", "broker",
         "--broker", "4.0"], env=env, timeout=1800)
    return f"{TAG}-4.0"


def build_images(broker):
    """Build (or reuse from the layer cache) every image, tag TAG, with the
    broker of this line."""
    t = time.monotonic()
    env = dict(os.environ, WARREN_TAG=TAG)
    p = run([os.path.join(ROOT, "compose", "build-images"), "--tag", TAG, "--broker", broker],
            env=env, timeout=1800)
    print(f"build-images --broker {broker}: {time.monotonic() - t:.0f}s\n{p.stderr}")
    return TAG


@pytest.fixture(scope="session")
def images(docker_engine):
    return build_images("3.10")


@pytest.fixture(scope="session")
def images40(docker_engine):
    return build_images("4.0")


@pytest.fixture(scope="session")
def secrets_dir():
    d = tempfile.mkdtemp(prefix="warrentest-secrets-")
    run([os.path.join(ROOT, "compose", "warren-secrets"), d])
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Stack:
    """One compose project of the warren topology."""

    def __init__(self, project, mode, net, secrets, broker="3.10", khepri=False, tls=False):
        self.project = project
        self.tls = tls
        self.ca = os.path.join(secrets, "tls", "ca", "ca.pem")
        self.mode = mode
        self.broker = broker
        self.net = net
        self.secrets = secrets
        self.vip = f"{net}.100"
        self.password = open(os.path.join(secrets, "admin_password")).read().strip()
        self.lb_token = open(os.path.join(secrets, "lb_admin_token")).read().strip()
        self.env = dict(
            os.environ,
            COMPOSE_PROJECT_NAME=project,
            WARREN_MODE=mode,
            WARREN_BROKER=broker,
            WARREN_KHEPRI="true" if khepri else "false",
            WARREN_NET=net,
            WARREN_TAG=TAG,
            WARREN_SECRETS_DIR=secrets,
            WARREN_TLS="1" if tls else "0",
            WARREN_TLS_ONLY="0",
            WARREN_DOCKER_GID=str(os.stat("/var/run/docker.sock").st_gid),
            # random loopback ports: never collide with a demo or a developer
            WARREN_MGMT1_PORT="",
            WARREN_MGMT2_PORT="",
            WARREN_MGMT3_PORT="",
            WARREN_LB1_PORT="",
            WARREN_LB2_PORT="",
        )

    def dc(self, *args, check=True, timeout=600):
        return run(["docker-compose", "-f", COMPOSE_FILE, *args], check=check,
                   timeout=timeout, env=self.env)

    def container(self, service):
        return self.dc("ps", "-q", service).stdout.strip()

    def health(self, service):
        c = self.container(service)
        if not c:
            return "missing"
        p = run(["docker", "inspect", "-f",
                 "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}", c],
                check=False)
        return p.stdout.strip() or "missing"

    def wait_healthy(self, services=("broker1", "broker2", "broker3", "lb1", "lb2"), timeout=420):
        def ok():
            return all(self.health(s) == "running/healthy" for s in services)
        try:
            poll(f"{services} healthy", ok, timeout, 3)
        except AssertionError:
            logs = self.dc("logs", "--no-color", "--tail", "30", check=False).stdout
            raise AssertionError(
                f"not healthy: {[(s, self.health(s)) for s in services]}\n{logs[-6000:]}"
            ) from None

    def mgmt(self, path, node=1, user="admin", password=None):
        req = urllib.request.Request(f"http://{self.net}.{10 + node}:15672/api{path}")
        cred = f"{user}:{self.password if password is None else password}"
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def tls_context(self):
        """A client context that trusts only the stack's CA (compose/warren-tls)."""
        return ssl.create_default_context(cafile=self.ca)

    def served_serial(self, host, port=5671):
        """Serial (hex, upper case, as `openssl x509 -serial`) of the certificate
        a new TLS handshake with host:port presents, verified against the CA."""
        with socket.create_connection((host, port), timeout=10) as raw:
            with self.tls_context().wrap_socket(raw, server_hostname=host) as tls:
                return tls.getpeercert()["serialNumber"].upper()

    def file_serial(self, node):
        p = run(["openssl", "x509", "-noout", "-serial", "-in",
                 os.path.join(self.secrets, "tls", node, "cert.pem")])
        return p.stdout.strip().split("=", 1)[1].upper()

    def connections(self, node=1):
        """Client connections of the cluster: (name, ssl, port) from node's
        management API (each node lists every node's connections)."""
        return [(c.get("client_properties", {}).get("connection_name", ""), c.get("ssl"), c.get("port"))
                for c in self.mgmt("/connections?columns=client_properties,ssl,port", node=node)]

    def amqps(self, host, name, **kw):
        """A pika connection over AMQPS to host:5671, verified with the CA."""
        import pika
        return pika.BlockingConnection(pika.ConnectionParameters(
            host=host, port=5671, credentials=pika.PlainCredentials("admin", self.password),
            ssl_options=pika.SSLOptions(self.tls_context(), server_hostname=host),
            client_properties={"connection_name": name}, connection_attempts=5, retry_delay=2,
            socket_timeout=10, blocked_connection_timeout=30, **kw))

    def renew_and_check(self, node):
        """compose/warren-tls renew NODE on the running stack: new handshakes
        with NODE present the new serial, the broker was not restarted, and an
        AMQPS session opened before the renewal is still served."""
        host = f"{self.net}.{10 + int(node[-1])}"
        c = self.container(node)

        def started():
            return run(["docker", "inspect", "-f", "{{.State.StartedAt}} {{.RestartCount}}", c]).stdout.strip()
        before, started_before = self.served_serial(host), started()
        assert before == self.file_serial(node)
        # heartbeat 0: the blocking client sends none while it waits for the renewal
        old = self.amqps(host, f"warrentest-renew-{node}", heartbeat=0)
        try:
            p = run([os.path.join(ROOT, "compose", "warren-tls"), "renew", node], env=self.env, timeout=300)
            assert "PEM cache cleared" in p.stderr, p.stderr
            after = self.file_serial(node)
            assert after != before
            assert self.served_serial(host) == after
            assert self.served_serial(host, 15671) == after  # management HTTPS too
            assert started() == started_before, "the broker was restarted"
            # the session from before the renewal is still served
            ch = old.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.basic_publish("", q, b"after renewal")
            assert poll("the message back", lambda: ch.basic_get(q, auto_ack=True)[2], 30, 1) == b"after renewal"
        finally:
            old.close()

    def vip_holder(self):
        holders = []
        for s in ("lb1", "lb2"):
            c = self.container(s)
            if not c:
                continue
            p = run(["docker", "exec", c, "ip", "-o", "-4", "addr", "show"], check=False)
            if f" {self.vip}/" in p.stdout:
                holders.append(s)
        return holders

    def drill(self, fault, duration="20s", extra=(), tls=False):
        """Run one drill as scripts/demo does (lb status through the VIP, JSON
        and HTML reports); returns the process, the parsed JSON report and the
        HTML report's text (None when missing). tls: the workload speaks AMQPS
        to the VIP's 5671 (the lb's passthrough frontend), verified with the
        stack's CA (mounted in the drill container as /etc/warren/tls/ca.pem)."""
        out = tempfile.mkdtemp(prefix="warrentest-drill-")
        os.chmod(out, 0o777)
        endpoint = ["--endpoint", f"{self.vip}:5671", "--tls", "--tls-ca", "/etc/warren/tls/ca.pem"] \
            if tls else ["--endpoint", f"{self.vip}:5672"]
        try:
            p = self.dc(
                "--profile", "drill", "run", "--rm", "-v", f"{out}:/out", "drill",
                "run", *endpoint,
                "--mgmt", "http://broker1:15672,http://broker2:15672,http://broker3:15672",
                "--user", "admin", "--password-file", "/run/secrets/admin_password",
                "--target", "compose", "--project", self.project, "--vip", self.vip,
                "--fault", fault, "--mode", self.mode, "--duration", duration, "--quiet",
                "--lb-status", self.lb_status_url(),
                "--json", f"/out/{fault}.json", "--html", f"/out/{fault}.html", *extra,
                check=False, timeout=900,
            )
            report = html = None
            path = os.path.join(out, f"{fault}.json")
            if os.path.exists(path):
                with open(path) as f:
                    report = json.load(f)
            path = os.path.join(out, f"{fault}.html")
            if os.path.exists(path):
                with open(path) as f:
                    html = f.read()
            return p, report, html
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def lb_status_url(self, host=None):
        """warren-lb's admin /status on the compose network: through the VIP
        (the lb that holds it) unless an lb host's own address is given."""
        return f"http://{host or self.vip}:8404/status"

    def leftovers(self):
        label = f"label=com.docker.compose.project={self.project}"
        found = {}
        for kind, cmd in (
            ("containers", ["docker", "ps", "-aq", "--filter", label]),
            ("networks", ["docker", "network", "ls", "-q", "--filter", label]),
            ("volumes", ["docker", "volume", "ls", "-q", "--filter", label]),
        ):
            ids = run(cmd, check=False).stdout.split()
            if ids:
                found[kind] = ids
        return found

    def down(self):
        return self.dc("--profile", "drill", "down", "-v", "--remove-orphans", "-t", "20",
                       check=False, timeout=300)


class ConnectionSampler:
    """Samples the cluster's client connections (Stack.connections) once a
    second in a thread, while a drill runs: what the brokers saw of it."""

    def __init__(self, stack):
        self.stack = stack
        self.seen = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            for node in (1, 2, 3):  # any node that answers (one is being crashed)
                try:
                    self.seen.update(self.stack.connections(node))
                    break
                except Exception:
                    continue
            self.stop.wait(1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def stack_up(s):
    """Start the stack, wait until healthy, yield it; down -v and check that
    nothing is left behind, also on failure."""
    s.down()  # a previous interrupted run of this suite
    # the brokers' certificates must name this stack's addresses (WARREN_NET)
    run([os.path.join(ROOT, "compose", "warren-tls"), "init"], env=s.env)
    t = time.monotonic()
    try:
        s.dc("up", "-d", "--no-build")
        s.wait_healthy()
        print(f"{s.project}: healthy after {time.monotonic() - t:.0f}s")
        yield s
    finally:
        s.down()
        left = s.leftovers()
        if left:
            # clean what we created, then fail loudly: down must leave nothing
            for c in left.get("containers", []):
                run(["docker", "rm", "-f", "-v", c], check=False)
            for n in left.get("networks", []):
                run(["docker", "network", "rm", n], check=False)
            for v in left.get("volumes", []):
                run(["docker", "volume", "rm", "-f", v], check=False)
            raise AssertionError(f"compose down left {left} behind in {s.project}")


@pytest.fixture(scope="module", params=["mirrored", "quorum"])
def stack(request, images, secrets_dir):
    mode = request.param
    if mode == "quorum" and os.environ.get("WARREN_COMPOSE_QUORUM", "1") == "0":
        pytest.skip("quorum stack disabled by WARREN_COMPOSE_QUORUM=0")
    # TLS on (both listeners): the plain tests and the AMQPS ones on one stack
    yield from stack_up(Stack(f"warrentest{mode[0]}", mode, NETS[mode], secrets_dir, tls=True))
