"""Real parts: the apt rabbitmq-server booted by the chart's start.sh with the chart's
TLS-only rabbitmq.conf, and a certificate rotation as the kubelet does it (new files
renamed over the mounted ones): the chart's tls-watch.sh (started by start.sh) clears
the PEM cache, new AMQPS and HTTPS handshakes present the new certificate, and a
TLS session opened before the rotation keeps working."""

import socket
import ssl
import subprocess
import time

from test_real_broker import booted, http
from test_tls import make_pki, rotate
from warren_testkit import poll

VALUES = {
    "broker": {"replicas": 1},
    "tls": {"enabled": True, "only": True, "existingSecret": "my-rabbit-tls", "rotationCheckSeconds": 1},
}
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def context(ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = True
    return ctx


def handshake(port, ctx):
    """A new TLS session to localhost:port; returns (socket, the served certificate's serial)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    return s, s.getpeercert()["serialNumber"].upper().lstrip("0")


def serial_of(pki):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(pki / "tls.crt")],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1].upper().lstrip("0")


def test_real_tls_only_broker_rotates_without_restart(tmp_path):
    pki = make_pki(tmp_path / "tls")
    old_serial = serial_of(pki)
    ctx = context(pki / "ca.crt")
    with booted(tmp_path, VALUES, tls=ctx) as b:
        ports = b["ports"]
        # TLS only: no plain listener of any kind was configured or opened
        assert set(ports) == {"listeners.ssl.default", "management.ssl.port", "prometheus.ssl.port"}
        def protocols():
            status, overview = http(b["mgmt"], "/api/overview", tls=ctx)
            assert status == 200
            return sorted(listener["protocol"] for listener in overview["listeners"])

        # the node opens its AMQP listeners last, after the plugins' HTTP(S) ones
        poll("the AMQPS listener", lambda: "amqp/ssl" in protocols(), timeout=60, interval=0.5)
        assert protocols() == ["amqp/ssl", "clustering", "https", "https/prometheus"]

        amqps = ports["listeners.ssl.default"]
        before, serial = handshake(amqps, ctx)
        assert serial == old_serial
        assert handshake(ports["prometheus.ssl.port"], ctx)[1] == old_serial

        rotate(pki)
        new_serial = serial_of(pki)
        assert new_serial != old_serial
        rotated_at = time.monotonic()

        def new_handshake_serial():
            s, got = handshake(amqps, ctx)
            s.close()
            return got == new_serial

        poll("a new AMQPS handshake presenting the rotated certificate", new_handshake_serial, timeout=60,
             interval=0.5)
        # well before Erlang's own periodic PEM cache validation (2 minutes): the watcher did it
        assert time.monotonic() - rotated_at < 60
        log = (tmp_path / "server.log").read_text()
        assert "PEM cache cleared: new TLS connections get the new certificate" in log, log[-3000:]
        assert handshake(b["mgmt"], ctx)[1] == new_serial
        assert handshake(ports["prometheus.ssl.port"], ctx)[1] == new_serial

        # the session from before the rotation is untouched: it still speaks AMQP
        before.sendall(AMQP_HEADER)
        frame = before.recv(7)
        assert frame[:1] == b"\x01", frame  # a method frame: connection.start
        before.close()
