"""Bad input to the broker image: the container exits non-zero with one clear
"warren-broker: FATAL: ..." line, instead of starting a half-configured node."""

import os
import subprocess
import tempfile
import uuid

import pytest

from conftest import ROOT
from warren_testkit import run


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


# The broker line (WARREN_BROKER) against the image and the mode: refused by the
# entrypoint before RabbitMQ starts, whatever started the container.
LINE_CASES = {
    "mirrored-on-4.0": (
        "4.0", ["WARREN_BROKER=4.0", "WARREN_MODE=mirrored"],
        "FATAL: WARREN_MODE=mirrored is not supported on RabbitMQ 4.0.5: classic queue mirroring "
        "was removed in 4.0 (supported WARREN_MODE on 4.x: quorum)",
    ),
    "mirrored-default-on-4.0": (
        "4.0", [],
        "FATAL: WARREN_MODE=mirrored is not supported on RabbitMQ 4.0.5",
    ),
    "3.10-line-on-4.0-image": (
        "4.0", ["WARREN_BROKER=3.10", "WARREN_MODE=quorum"],
        "FATAL: WARREN_BROKER=3.10 but this image is RabbitMQ 4.0.5 (rebuild it: compose/build-images --broker 3.10)",
    ),
    "4.0-line-on-3.10-image": (
        "3.10", ["WARREN_BROKER=4.0", "WARREN_MODE=quorum"],
        "FATAL: WARREN_BROKER=4.0 but this image is RabbitMQ 3.10.8 (rebuild it: compose/build-images --broker 4.0)",
    ),
    "unknown-line": (
        "3.10", ["WARREN_BROKER=4.1"],
        "FATAL: unknown WARREN_BROKER '4.1' (expected: 3.10 or 4.0)",
    ),
    "khepri-on-3.10": (
        "3.10", ["WARREN_BROKER=3.10", "WARREN_MODE=quorum", "WARREN_KHEPRI=true"],
        "FATAL: WARREN_KHEPRI=true needs RabbitMQ 4.0 or newer, this image is 3.10.8: RabbitMQ 3.x has no "
        "supported Khepri",
    ),
    "khepri-not-boolean": (
        "4.0", ["WARREN_BROKER=4.0", "WARREN_MODE=quorum", "WARREN_KHEPRI=yes"],
        "FATAL: WARREN_KHEPRI='yes' is not true or false",
    ),
}


@pytest.mark.parametrize("case", sorted(LINE_CASES))
def test_entrypoint_refuses_line_mismatch(case, broker_image, broker_image40, secret_files):
    line, env, message = LINE_CASES[case]
    _, files, _ = secret_files
    rc, out = broker_run(broker_image40 if line == "4.0" else broker_image, files, env=env)
    assert rc == 64, out
    assert message in out, out
    assert "starting rabbit@" not in out, out


# compose/warren-check: the same refusals before anything starts.
CHECK_CASES = {
    "mirrored-with-4.0": (
        {"WARREN_BROKER": "4.0", "WARREN_MODE": "mirrored"},
        "warren-check: FATAL: WARREN_MODE=mirrored is not supported with WARREN_BROKER=4.0: classic queue "
        "mirroring was removed in RabbitMQ 4.0 (supported WARREN_MODE on 4.0: quorum)",
    ),
    "mirrored-by-default-with-4.0": (
        {"WARREN_BROKER": "4.0"},
        "warren-check: FATAL: WARREN_MODE=mirrored is not supported with WARREN_BROKER=4.0",
    ),
    "khepri-with-3.10": (
        {"WARREN_BROKER": "3.10", "WARREN_MODE": "quorum", "WARREN_KHEPRI": "true"},
        "warren-check: FATAL: WARREN_KHEPRI=true needs WARREN_BROKER=4.0 (got 3.10): RabbitMQ 3.x has no "
        "supported Khepri",
    ),
    "unknown-line": (
        {"WARREN_BROKER": "3.13"},
        "warren-check: FATAL: unknown WARREN_BROKER '3.13' (supported: 3.10, 4.0)",
    ),
    "unknown-mode": (
        {"WARREN_BROKER": "4.0", "WARREN_MODE": "stream"},
        "warren-check: FATAL: unknown WARREN_MODE 'stream' (supported: mirrored, quorum)",
    ),
    "khepri-not-boolean": (
        {"WARREN_BROKER": "4.0", "WARREN_MODE": "quorum", "WARREN_KHEPRI": "1"},
        "warren-check: FATAL: WARREN_KHEPRI='1' is not true or false",
    ),
    "tls-only-without-tls": (
        {"WARREN_TLS_ONLY": "1"},
        "warren-check: FATAL: WARREN_TLS_ONLY=1 needs WARREN_TLS=1 (it closes the plain listeners; "
        "without TLS there would be none left)",
    ),
    "tls-not-boolean": (
        {"WARREN_TLS": "yes"},
        "warren-check: FATAL: WARREN_TLS='yes' is not 0 or 1",
    ),
}


def _check(env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("WARREN_BROKER", "WARREN_MODE", "WARREN_KHEPRI", "WARREN_TLS", "WARREN_TLS_ONLY")}
    return subprocess.run([os.path.join(ROOT, "compose", "warren-check")], env=dict(clean, **env),
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("case", sorted(CHECK_CASES))
def test_warren_check_refuses(case):
    env, message = CHECK_CASES[case]
    p = _check(env)
    assert p.returncode == 64, p.stdout + p.stderr
    assert message in p.stderr, p.stderr


@pytest.mark.parametrize("env", [
    {}, {"WARREN_MODE": "quorum"},
    {"WARREN_BROKER": "4.0", "WARREN_MODE": "quorum"},
    {"WARREN_BROKER": "4.0", "WARREN_MODE": "quorum", "WARREN_KHEPRI": "true"},
    {"WARREN_TLS": "1"}, {"WARREN_TLS": "1", "WARREN_TLS_ONLY": "1"},
])
def test_warren_check_accepts(env):
    p = _check(env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("warren-check: ok: WARREN_BROKER="), p.stdout


@pytest.mark.parametrize("args,message", [
    (["--broker", "4.0", "--mode", "mirrored"],
     "demo: --mode mirrored is not supported with --broker 4.0: classic queue mirroring was removed in "
     "RabbitMQ 4.0 (supported --mode on 4.0: quorum)"),
    (["--broker", "4.1"], "demo: unknown --broker '4.1' (supported: 3.10, 4.0)"),
])
def test_demo_refuses_at_argument_parsing(docker_engine, args, message):
    # before the dependencies, the engine, the images or any container: the
    # project never gets a container, network or volume
    project = f"warrentest-demo-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, COMPOSE_PROJECT_NAME=project)
    p = subprocess.run([os.path.join(ROOT, "scripts", "demo"), *args], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr, p.stderr
    assert "== dependencies" not in p.stdout, p.stdout
    label = f"label=com.docker.compose.project={project}"
    for cmd in (["docker", "ps", "-aq", "--filter", label],
                ["docker", "network", "ls", "-q", "--filter", label],
                ["docker", "volume", "ls", "-q", "--filter", label]):
        assert run(cmd).stdout.strip() == "", cmd


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


def test_broker_tls_without_certificates(broker_image, secret_files):
    # WARREN_TLS=1 and nothing mounted at /etc/warren/tls (no compose/warren-tls init)
    _, files, _ = secret_files
    rc, out = broker_run(broker_image, files, env=["WARREN_TLS=1"])
    assert rc == 66, out
    assert ("warren-broker: FATAL: WARREN_TLS=1 but /etc/warren/tls/ca.pem is missing or empty "
            "(compose: run compose/warren-tls init") in out, out


def test_broker_tls_only_without_tls(broker_image, secret_files):
    _, files, _ = secret_files
    rc, out = broker_run(broker_image, files, env=["WARREN_TLS_ONLY=1"])
    assert rc == 64, out
    assert "warren-broker: FATAL: WARREN_TLS_ONLY=1 needs WARREN_TLS=1" in out, out


def _render(tmp_path, overrides):
    """warren-lbhost render on this host (no engine): the lb host's config
    for these settings, and the process."""
    secrets = tmp_path / "secrets"
    run([os.path.join(ROOT, "compose", "warren-secrets"), str(secrets)])
    env = dict(os.environ, WARREN_RUN_DIR=str(tmp_path / "run"), WARREN_VIP="10.230.9.100",
               WARREN_ADMIN_PASSWORD_FILE=str(secrets / "admin_password"),
               WARREN_LB_TOKEN_FILE=str(secrets / "lb_admin_token"),
               WARREN_TLS_CA=str(secrets / "tls" / "ca" / "ca.pem"))
    env.update(overrides)
    p = subprocess.run([os.path.join(ROOT, "compose", "lbhost", "warren-lbhost"), "render"],
                       env=env, capture_output=True, text=True, timeout=60)
    return p, tmp_path / "run" / "lb.toml"


def test_lbhost_tls_only_without_tls(tmp_path):
    p, _ = _render(tmp_path, {"WARREN_TLS_ONLY": "1"})
    assert p.returncode == 64, p.stderr
    assert "warren-lbhost: FATAL: WARREN_TLS_ONLY=1 needs WARREN_TLS=1" in p.stderr, p.stderr


def test_lbhost_tls_only_without_ca(tmp_path):
    p, _ = _render(tmp_path, {"WARREN_TLS": "1", "WARREN_TLS_ONLY": "1", "WARREN_TLS_CA": "/nonexistent/ca.pem"})
    assert p.returncode == 64, p.stderr
    assert ("warren-lbhost: FATAL: WARREN_TLS_ONLY=1: the CA /nonexistent/ca.pem the TLS checks verify the "
            "brokers with is missing or unreadable") in p.stderr, p.stderr


def _lb_bin():
    return os.environ.get("WARREN_LB_BIN") or os.path.join(ROOT, "target", "debug", "warren-lb")


def test_lbhost_tls_config_passes_check_config(tmp_path):
    # both listeners: an amqps frontend 5671 in passthrough next to amqp 5672
    p, conf = _render(tmp_path, {"WARREN_TLS": "1"})
    assert p.returncode == 0, p.stderr
    text = conf.read_text()
    assert 'name = "amqps"\nbind = "0.0.0.0:5671"\nbackend = "rabbitmq-tls"' in text, text
    assert 'address = "broker1:5671"' in text and 'address = "broker1:5672"' in text, text
    c = run([_lb_bin(), "check-config", str(conf)], check=False)
    assert c.returncode == 0, c.stdout + c.stderr


def test_lbhost_tls_only_config_passes_check_config(tmp_path):
    p, conf = _render(tmp_path, {"WARREN_TLS": "1", "WARREN_TLS_ONLY": "1"})
    assert p.returncode == 0, p.stderr
    text = conf.read_text()
    assert "5672" not in text and "[backend.check.tls]" in text and "port = 15671" in text, text
    c = run([_lb_bin(), "check-config", str(conf)], check=False)
    assert c.returncode == 0, c.stdout + c.stderr


def test_warren_tls_renew_unknown_node(tmp_path):
    p = subprocess.run([os.path.join(ROOT, "compose", "warren-tls"), "renew", "broker9", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 64, p.stderr
    assert "warren-tls: FATAL: renew: unknown node 'broker9' (expected one of: broker1 broker2 broker3)" in p.stderr


def test_warren_tls_renew_without_material(tmp_path):
    p = subprocess.run([os.path.join(ROOT, "compose", "warren-tls"), "renew", "broker1", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 64, p.stderr
    assert f"warren-tls: FATAL: no TLS material in {tmp_path} (make it first" in p.stderr, p.stderr


def test_warren_tls_reissues_for_another_net(tmp_path):
    # made once; a changed WARREN_NET re-issues the certificates (same CA, same keys)
    d = tmp_path / "tls"
    tls = os.path.join(ROOT, "compose", "warren-tls")
    run([tls, "init", str(d)], env=dict(os.environ, WARREN_NET="10.230.7"))
    ca, key = (d / "ca" / "ca.pem").read_text(), (d / "broker2" / "key.pem").read_text()
    p = run([tls, "init", str(d)], env=dict(os.environ, WARREN_NET="10.230.7"))
    assert "issued" not in p.stderr, p.stderr  # nothing to do the second time
    run([tls, "init", str(d)], env=dict(os.environ, WARREN_NET="10.230.8"))
    assert (d / "ca" / "ca.pem").read_text() == ca and (d / "broker2" / "key.pem").read_text() == key
    san = run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(d / "broker2" / "cert.pem")]).stdout
    assert "IP Address:10.230.8.12" in san and "IP Address:10.230.8.100" in san and "DNS:broker2" in san, san
    assert oct((d).stat().st_mode & 0o777) == "0o700" and oct((d / "ca.key").stat().st_mode & 0o777) == "0o400"
