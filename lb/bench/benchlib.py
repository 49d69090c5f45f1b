"""Shared by lb/bench/tls and lb/bench/idle-sessions: process bookkeeping,
ports, a test certificate, median and spread.  Plain functions, no state
beyond the Procs a bench creates."""

import os
import resource
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path


class Fail(Exception):
    pass


class Procs:
    """Every process a bench started, ended by pid (TERM, then KILL).

    Each is started in its own session, so its process group id is its pid:
    `group=True` ends the group too (socat's `fork` children), and only
    that group, which this bench created."""

    def __init__(self):
        self.live = []

    def start(self, cmd, name=None, group=False, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(cmd, start_new_session=True, **kw)
        p.bench_name = name or str(cmd[0])
        p.bench_group = group
        self.live.append(p)
        return p

    def _signal(self, p, sig):
        try:
            if p.bench_group:
                os.killpg(p.pid, sig)
            else:
                os.kill(p.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, p, grace=5.0):
        if p.poll() is None or p.bench_group:
            self._signal(p, signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(p, signal.SIGKILL)
                p.wait()
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in reversed(list(self.live)):
            self.stop(p, grace=3.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fail(f"{proc.bench_name} exited ({proc.returncode}) before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Fail(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def make_cert(work):
    """A self-signed ECDSA P-256 certificate for localhost / 127.0.0.1, made
    with openssl in `work`: (cert, key, combined) paths.  The key is PKCS#8
    (what `openssl req` writes); `combined` is cert + key in one file, the
    form HAProxy's `crt` reads."""
    cert, key, combined = Path(work) / "cert.pem", Path(work) / "key.pem", Path(work) / "combined.pem"
    res = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                          "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise Fail(f"openssl req failed: {res.stderr.strip()[-400:]}")
    combined.write_text(cert.read_text() + key.read_text())
    return cert, key, combined


def raise_nofile(need):
    """Soft open-files limit to the hard one; as root, the hard one too when
    it is below `need` and the process may (CAP_SYS_RESOURCE); children
    inherit both: the servers and the proxies."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            raise Fail(f"hard open-files limit {hard} < {need} needed, and this process may not raise it "
                       "(root with CAP_SYS_RESOURCE may); use fewer sessions") from None
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def summary(xs):
    """Median and spread (min, max) of the repetitions, or Nones."""
    if not xs:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}
