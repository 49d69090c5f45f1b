"""Bad input to the broker image: the container exits non-zero with one clear
"warren-broker: FATAL: ..." line, instead of starting a half-configured node."""

import os
import subprocess
import tempfile
import uuid

import pytest

from conftest import run


def broker_run(tag, secrets, env=(), hostname="broker1", timeout=120):
    name = f"warrentest-bad-{uuid.uuid4().hex[:8]}"
    cmd = ["docker", "run", "--name", name, "--label", "org.warren.test=1",
           "--network", "none", "--hostname", hostname]
    for k, v in secrets.items():
        cmd += ["-v", f"{v}:/run/secrets/{k}:ro"]
    for e in env:
        cmd += ["-e", e]
    cmd.append(f"warren/broker:{tag}")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)


@pytest.fixture()
def secret_files():
    d = tempfile.mkdtemp(prefix="warrentest-bad-")
    files = {}

    def make(name, content):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, 0o444)
        files[name] = path
        return path

    make("erlang_cookie", "C" * 40)
    make("admin_password", "p" * 20)
    yield d, files, make
    run(["rm", "-rf", d], check=False)


def test_missing_cookie(broker_image, secret_files):
    _, files, _ = secret_files
    files.pop("erlang_cookie")
    rc, out = broker_run(broker_image, files)
    assert rc != 0
    assert "warren-broker: FATAL: Erlang cookie secret file /run/secrets/erlang_cookie is missing" in out, out


def test_short_cookie(broker_image, secret_files):
    _, files, make = secret_files
    make("erlang_cookie", "short")
    rc, out = broker_run(broker_image, files)
    assert rc != 0
    assert "FATAL: Erlang cookie in /run/secrets/erlang_cookie is too short (5 characters, need at least 20)" in out, out


def test_short_admin_password(broker_image, secret_files):
    _, files, make = secret_files
    make("admin_password", "guest")
    rc, out = broker_run(broker_image, files)
    assert rc != 0
    assert "FATAL: admin password in /run/secrets/admin_password is too short" in out, out


def test_unknown_mode(broker_image, secret_files):
    _, files, _ = secret_files
    rc, out = broker_run(broker_image, files, env=["WARREN_MODE=mirroed"])
    assert rc != 0
    assert "FATAL: unknown WARREN_MODE 'mirroed' (expected: mirrored or quorum)" in out, out


def test_fresh_node_without_peers_refuses_to_start_alone(broker_image, secret_files):
    _, files, _ = secret_files
    rc, out = broker_run(broker_image, files, env=["WARREN_PEER_WAIT=3"], hostname="broker2")
    assert rc != 0
    assert "FATAL: no peer of rabbit@broker1 rabbit@broker2 rabbit@broker3 reachable" in out, out
    assert "refusing to start rabbit@broker2 as a lone one-node cluster" in out, out


def lbhost_run(tag, secrets, timeout=60):
    """Start the lb host image with these secrets; it must refuse before
    starting warren-lb (no network needed: rendering comes first)."""
    name = f"warrentest-badlb-{uuid.uuid4().hex[:8]}"
    cmd = ["docker", "run", "--name", name, "--label", "org.warren.test=1",
           "--network", "none", "-e", "WARREN_VIP=10.230.9.100"]
    for k, v in secrets.items():
        cmd += ["-v", f"{v}:/run/secrets/{k}:ro"]
    cmd.append(f"warren/lbhost:{tag}")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)


def test_lbhost_without_admin_token(images, secret_files):
    # the admin API listens on the compose network: no token, no start
    _, files, _ = secret_files
    rc, out = lbhost_run(images, files)
    assert rc == 64, out
    assert ("warren-lbhost: FATAL: lb admin token file /run/secrets/lb_admin_token is missing "
            "or unreadable (mount the lb_admin_token secret") in out, out


def test_lbhost_short_admin_token(images, secret_files):
    _, files, make = secret_files
    make("lb_admin_token", "short")
    rc, out = lbhost_run(images, files)
    assert rc == 64, out
    assert ("FATAL: lb admin token in /run/secrets/lb_admin_token must be at least 16 characters "
            "of A-Z a-z 0-9 . _ - (got 5 characters)") in out, out
