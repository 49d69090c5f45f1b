"""WARREN_TLS_ONLY=1 on a real broker of each line (3.10 and 4.0): AMQPS,
management HTTPS and Prometheus TLS listen, none of the plain ports does, and
the broker health check counts the TLS ports. One node (WARREN_HEALTH_MIN_NODES=1)
on its own network: what is tested is the listeners the entrypoint renders.
The lb side of TLS only needs [backend.check.tls] (test_bad_input.py)."""

import os
import socket
import ssl
import tempfile
import uuid

import pytest

from conftest import ROOT
from warren_testkit import poll, run

PLAIN = (5672, 15672, 15692)
TLS = (5671, 15671, 15691)


def _open(ip, port):
    try:
        socket.create_connection((ip, port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("line", ["3.10", "4.0"])
def test_tls_only_listeners(request, line):
    tag = request.getfixturevalue("broker_image" if line == "3.10" else "broker_image40")
    image = f"warren/broker:{tag}"
    secrets = tempfile.mkdtemp(prefix="warrentest-tlsonly-")
    name = f"warrentest-tlsonly-{uuid.uuid4().hex[:8]}"
    net, ip = name, "10.230.45.11" if line == "3.10" else "10.230.46.11"
    try:
        run([os.path.join(ROOT, "compose", "warren-secrets"), secrets])
        run(["docker", "network", "create", "--label", "org.warren.test=1",
             "--subnet", ip.rsplit(".", 1)[0] + ".0/24", net])
        run(["docker", "run", "-d", "--name", name, "--label", "org.warren.test=1", "--network", net,
             "--ip", ip, "--hostname", "broker1",
             "-e", "WARREN_MODE=quorum", "-e", f"WARREN_BROKER={line}", "-e", "WARREN_TLS=1",
             "-e", "WARREN_TLS_ONLY=1", "-e", "WARREN_CLUSTER_NODES=rabbit@broker1",
             "-e", "WARREN_HEALTH_MIN_NODES=1",
             "-v", f"{secrets}/erlang_cookie:/run/secrets/erlang_cookie:ro",
             "-v", f"{secrets}/admin_password:/run/secrets/admin_password:ro",
             "-v", f"{secrets}/tls/broker1:/etc/warren/tls:ro", image])
        health = lambda: run(["docker", "exec", name, "warren-broker-healthcheck"], check=False)  # noqa: E731
        p = poll("broker healthy", lambda: (h := health()).returncode == 0 and h, 240, interval=3)
        assert p.stdout.startswith("healthy"), p.stdout
        ctx = ssl.create_default_context(cafile=f"{secrets}/tls/ca/ca.pem")
        ctx.check_hostname = False  # the certificate names WARREN_NET's addresses, not this test network's
        for port in TLS:
            with ctx.wrap_socket(socket.create_connection((ip, port), timeout=10)) as s:
                assert s.getpeercert()["subject"] == ((("commonName", "broker1"),),)
        assert [p for p in PLAIN if _open(ip, p)] == [], "a plain listener is open in TLS-only mode"
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)
        run(["docker", "network", "rm", net], check=False)
        run(["rm", "-rf", secrets], check=False)
