"""Run the broker's init (setup.sh) and preStop (prestop.sh) scripts for real with sh,
against temporary directories and a stub rabbitmq-upgrade that records its calls."""

import json
import os
import stat
import subprocess

import pytest

from conftest import SCENARIOS, STS, configmap_file, render


def relocate(text: str, root) -> str:
    for path, sub in (
        ("/etc/warren/config", "config"),
        ("/etc/warren/secret", "secret"),
        ("/etc/rabbitmq", "etc"),
        ("/var/lib/rabbitmq", "data"),
        ("/etc/pod-info", "pod-info"),
        ("/etc/warren/tls", "tls"),
    ):
        text = text.replace(path, str(root / sub))
    return text


def lay_out(tmp_path, r, password: str, cookie: str = "C" * 64):
    for d in ("config", "secret", "etc", "data", "pod-info", "bin"):
        (tmp_path / d).mkdir(exist_ok=True)
    cm = r.get("ConfigMap", f"{STS}-config")["data"]
    for key, text in cm.items():
        (tmp_path / "config" / key).write_text(relocate(text, tmp_path))
    (tmp_path / "secret" / "erlang-cookie").write_text(cookie)
    (tmp_path / "secret" / "admin-password").write_text(password)


@pytest.mark.parametrize("mode", ["mirrored", "quorum"])
@pytest.mark.parametrize("password", ["s1mplePassw0rd", 'tri"ck\\y&|/$(id)`x`%'])
def test_setup_writes_cookie_and_definitions(tmp_path, mode, password):
    r = render(SCENARIOS[mode])
    lay_out(tmp_path, r, password)
    # an old cookie from a previous boot (read-only) must be replaced
    old = tmp_path / "data" / ".erlang.cookie"
    old.write_text("old")
    old.chmod(0o400)
    subprocess.run(["sh", str(tmp_path / "config" / "setup.sh")], check=True, timeout=30)
    cookie = tmp_path / "data" / ".erlang.cookie"
    assert cookie.read_text() == "C" * 64
    assert stat.S_IMODE(cookie.stat().st_mode) == 0o400
    defs_path = tmp_path / "etc" / "definitions.json"
    assert stat.S_IMODE(defs_path.stat().st_mode) & 0o077 == 0, "definitions hold a password"
    defs = json.loads(defs_path.read_text())
    assert defs["users"] == [{"name": "admin", "password": password, "tags": "administrator"}]
    assert defs["permissions"][0]["user"] == "admin"
    if mode == "mirrored":
        assert defs["policies"][0]["definition"]["ha-mode"] == "all"
    else:
        assert defs["policies"] == []
    assert (tmp_path / "etc" / "rabbitmq.conf").read_text() == (tmp_path / "config" / "rabbitmq.conf").read_text()
    assert (tmp_path / "etc" / "enabled_plugins").exists()


def run_prestop(tmp_path, r, skip: str = "", fail_wait: bool = False, drain_fails: str = "",
                expect_rc: int = 0):
    """The calls preStop makes of a stub rabbitmq-upgrade. drain_fails: what the stub's
    first drain prints on stderr before it exits 69 (later drains pass)."""
    lay_out(tmp_path, r, "pw")
    log = tmp_path / "calls.log"
    stub = tmp_path / "bin" / "rabbitmq-upgrade"
    first_drain_fails = (
        f'if [ "$1" = drain ] && [ ! -e {tmp_path}/drained-once ]; then\n'
        f'  touch {tmp_path}/drained-once; echo {drain_fails!r} >&2; exit 69\nfi\n'
    )
    stub.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        + ('case "$1" in await_*) exit 1;; esac\n' if fail_wait else "")
        + (first_drain_fails if drain_fails else "")
        + "exit 0\n"
    )
    stub.chmod(0o755)
    (tmp_path / "pod-info" / "skip-prestop-checks").write_text(skip)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    p = subprocess.run(["sh", str(tmp_path / "config" / "prestop.sh")], env=env, timeout=30)
    assert p.returncode == expect_rc
    return [line.split() for line in log.read_text().splitlines()]


def test_prestop_mirrored_order(tmp_path):
    calls = run_prestop(tmp_path, render(SCENARIOS["mirrored"]))
    assert [c[0] for c in calls] == [
        "await_online_quorum_plus_one",
        "await_online_synchronized_mirror",
        "drain",
    ]
    assert all(c[1:] == ["-t", "3000"] for c in calls)


def test_prestop_quorum_on_4x_has_no_mirror_wait(tmp_path):
    calls = run_prestop(tmp_path, render(SCENARIOS["quorum"]))
    assert [c[0] for c in calls] == ["await_online_quorum_plus_one", "drain"]


def test_prestop_quorum_on_3_13_still_waits_for_mirrors(tmp_path):
    calls = run_prestop(tmp_path, render(SCENARIOS["quorum-3.13"]))
    assert [c[0] for c in calls] == [
        "await_online_quorum_plus_one",
        "await_online_synchronized_mirror",
        "drain",
    ]


def test_prestop_still_drains_when_a_wait_times_out(tmp_path):
    calls = run_prestop(tmp_path, render(), fail_wait=True)
    assert calls[-1][0] == "drain"


def test_prestop_drains_again_after_a_noproc_race(tmp_path):
    noproc = "Error: {:noproc, {:gen_server, :call, [#PID<12337.3141.0>, {:shutdown, 'Node was put into maintenance mode'}, :infinity]}}"
    calls = run_prestop(tmp_path, render(), drain_fails=noproc)
    assert [c[0] for c in calls][-2:] == ["drain", "drain"]


def test_prestop_fails_on_any_other_drain_error(tmp_path):
    calls = run_prestop(tmp_path, render(), drain_fails="Error: unable to perform an operation on node", expect_rc=1)
    assert [c[0] for c in calls].count("drain") == 1


def test_prestop_skip_annotation(tmp_path):
    calls = run_prestop(tmp_path, render(), skip="true")
    assert calls == [["drain", "-t", "60"]]


def test_start_runs_rabbitmq_server_from_path(tmp_path):
    """start.sh execs rabbitmq-server (the image's compose entrypoint is bypassed)."""
    r = render()
    lay_out(tmp_path, r, "pw")
    marker = tmp_path / "started"
    server = tmp_path / "bin" / "rabbitmq-server"
    server.write_text(f'#!/bin/sh\necho "$RABBITMQ_CONFIG_FILE" > {marker}\n')
    server.chmod(0o755)
    script = configmap_file(r, f"{STS}-config", "start.sh")
    # on this machine /usr/lib/rabbitmq/bin/rabbitmq-server may exist: point it away
    (tmp_path / "config" / "start.sh").write_text(
        script.replace("/usr/lib/rabbitmq/bin/rabbitmq-server", str(tmp_path / "absent"))
    )
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:/usr/bin:/bin", RABBITMQ_CONFIG_FILE="/etc/rabbitmq/rabbitmq.conf")
    subprocess.run(["sh", str(tmp_path / "config" / "start.sh")], check=True, env=env, timeout=30)
    assert marker.read_text().strip() == "/etc/rabbitmq/rabbitmq.conf"


def test_start_fails_clearly_without_server(tmp_path):
    r = render()
    script = configmap_file(r, f"{STS}-config", "start.sh").replace(
        "/usr/lib/rabbitmq/bin/rabbitmq-server", str(tmp_path / "absent")
    )
    (tmp_path / "start.sh").write_text(script)
    env = dict(os.environ, PATH=str(tmp_path))
    p = subprocess.run(["/bin/sh", str(tmp_path / "start.sh")], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 70
    assert "rabbitmq-server not found" in p.stderr
