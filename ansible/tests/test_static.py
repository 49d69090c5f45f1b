"""Static checks and bad-input behaviour: no containers, no root needed.

- ansible-lint with the production profile over roles and playbooks
- ansible-playbook --syntax-check of every playbook
- missing required variables (also a missing vault variable) fail early, naming it
- the docs, the example inventory and its vault agree on the variable names
- drill.yml refuses a fault warren-drill does not have, drill_victim, a missing binary
- an even number of brokers warns loudly
- the role defaults carry the tuned check profile of lb/check-profile.toml
"""

import json
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib

import pytest

import check_profile
from conftest import ANSIBLE_DIR, ansible_env, run_playbook
from warren_testkit import binary, require_tool
from docs_commands import DOCS, sh_blocks

PLAYBOOKS = ["site.yml", "rolling_restart.yml", "drill.yml"]


def test_ansible_lint_production_profile():
    require_tool("ansible-lint")
    proc = subprocess.run(
        ["ansible-lint", "--profile", "production", "--nocolor"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout, proc.stdout[-3000:]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_syntax_check(playbook):
    proc = run_playbook(playbook, ANSIBLE_DIR / "inventory/example/hosts.yml", "--syntax-check", timeout=300)
    assert proc.returncode == 0, proc.output[-4000:]


FULL_VARS = {
    "rabbitmq_cluster_erlang_cookie": "a-test-cookie-of-more-than-20-chars",
    "rabbitmq_cluster_admin_password": "test-password",
    "warren_vip_address": "10.240.250.100/24",
}


def write_local_inventory(tmp_path, brokers=3, lbs=2, host_vars=None):
    """Inventory of local 'hosts' (connection=local). Only the always-tagged checks
    run (--tags always --check), so nothing on this machine changes. host_vars:
    {host: {var: value or None}}; None leaves the variable undefined there."""
    host_vars = host_vars or {}
    lines = ["all:", "  vars:", "    ansible_connection: local",
             "    ansible_python_interpreter: '{{ ansible_playbook_python }}'",
             "  children:"]
    groups = {"rabbitmq": [f"wans-r{i}" for i in range(1, brokers + 1)],
              "warren_lb": [f"wans-l{i}" for i in range(1, lbs + 1)]}
    for group, hosts in groups.items():
        lines += [f"    {group}:", "      hosts:"]
        for host in hosts:
            lines.append(f"        {host}:")
            merged = dict(FULL_VARS, **host_vars.get(host, {}))
            for key, value in merged.items():
                if isinstance(value, bool):
                    lines.append(f"          {key}: {str(value).lower()}")
                elif value is not None:
                    lines.append(f"          {key}: '{value}'")
    inv = tmp_path / "hosts.yml"
    inv.write_text("\n".join(lines) + "\n")
    return inv


def run_checks_only(inv):
    # Only the "always" checks run; a minimal fact subset keeps each run short.
    return run_playbook("site.yml", inv, "--check", "--tags", "always", timeout=300,
                        extra_env={"ANSIBLE_GATHER_SUBSET": "!all,min"})


def test_complete_inventory_passes_the_checks(tmp_path):
    proc = run_checks_only(write_local_inventory(tmp_path))
    assert proc.returncode == 0, proc.output[-4000:]
    assert "WARNING: the inventory group" not in proc.output


def host_failure(output, host):
    """The text of the fatal/failed result for one host ('' when it did not fail)."""
    for block in output.split("\n\n"):
        for line in block.splitlines():
            if ("fatal: [" + host + "]") in line or ("failed: [" + host + "]") in line:
                return block
    return ""


def test_bad_or_missing_required_variables_fail_naming_them(tmp_path):
    # One run, one defect per host: each host must fail with its own variable's name.
    # wans-r4 and wans-r5 stay complete so the run goes on to the lb play.
    tls_dir = tmp_path / "supplied"
    tls_dir.mkdir()
    for name in ("ca.pem", "wans-r9.key"):
        (tls_dir / name).write_text("PEM")
    defects = {
        "wans-r3": ({"rabbitmq_cluster_erlang_cookie": "short"}, "rabbitmq_cluster_erlang_cookie is required"),
        "wans-r1": ({"rabbitmq_cluster_erlang_cookie": None}, "rabbitmq_cluster_erlang_cookie is required"),
        "wans-r2": ({"rabbitmq_cluster_admin_password": None}, "rabbitmq_cluster_admin_password is required"),
        "wans-l1": ({"warren_vip_address": None}, "warren_vip_address is required"),
        "wans-l2": ({"warren_vip_address": "10.240.250.100"}, "warren_vip_address is required"),
        "wans-r6": ({"rabbitmq_cluster_khepri": "maybe"}, "rabbitmq_cluster_khepri must be true or false (is maybe)"),
        "wans-l3": ({"warren_lb_admin_bind": "0.0.0.0:8404"},
                    "warren_lb_admin_token is required when warren_lb_admin_bind (0.0.0.0:8404) is beyond loopback"),
        "wans-r7": ({"rabbitmq_cluster_tls_only": True},
                    "rabbitmq_cluster_tls_only: true needs rabbitmq_cluster_tls_enabled: true"),
        "wans-r8": ({"rabbitmq_cluster_tls_enabled": True},
                    f"rabbitmq_cluster_tls_ca_file: {tmp_path}/tls/ca.pem does not exist on the controller"),
        "wans-r9": ({"rabbitmq_cluster_tls_enabled": True, "rabbitmq_cluster_tls_source_dir": str(tls_dir),
                     "rabbitmq_cluster_tls_cert_file": str(tmp_path)},
                    f"rabbitmq_cluster_tls_cert_file: {tmp_path} is not a file on the controller"),
        "wans-l4": ({"warren_lb_tls_only": True},
                    "warren_lb_tls_only (default: rabbitmq_cluster_tls_only) needs warren_lb_amqps"),
        "wans-l5": ({"warren_lb_tls_only": True, "warren_lb_amqps": True,
                     "warren_lb_check_tls_ca_src": "/nonexistent/ca.pem"},
                    "warren_lb_check_tls_ca_src (default: rabbitmq_cluster_tls_ca_file): /nonexistent/ca.pem"
                    " does not exist on the controller"),
    }
    proc = run_checks_only(write_local_inventory(
        tmp_path, brokers=9, lbs=5, host_vars={h: v for h, (v, _) in defects.items()}))
    assert proc.returncode != 0, proc.output[-4000:]
    for host, (_, message) in defects.items():
        failure = host_failure(proc.output, host)
        assert failure, f"{host} did not fail:\n{proc.output[-4000:]}"
        assert message in " ".join(failure.split()), failure
    assert not host_failure(proc.output, "wans-r4"), proc.output[-4000:]


@pytest.mark.parametrize("brokers", [2])
def test_even_number_of_brokers_warns(tmp_path, brokers):
    proc = run_checks_only(write_local_inventory(tmp_path, brokers=brokers, lbs=1))
    assert proc.returncode == 0, proc.output[-4000:]
    assert f"WARNING: the inventory group 'rabbitmq' has {brokers} brokers" in " ".join(proc.output.split())


def render(tmp_path, role, template, host, extra_vars=None):
    """One role template rendered for `host` of the example inventory with the role's
    defaults and `extra_vars` (-e, so they win); returns the rendered text."""
    play = tmp_path / f"render-{template}.yml"
    out = tmp_path / template
    play.write_text(textwrap.dedent(f"""\
        - name: Render
          hosts: {host}
          connection: local
          gather_facts: false
          tasks:
            - name: Defaults of the role
              ansible.builtin.include_vars:
                file: {ANSIBLE_DIR}/roles/{role}/defaults/main.yml
            - name: Render {template}
              ansible.builtin.template:
                src: {ANSIBLE_DIR}/roles/{role}/templates/{template}.j2
                dest: {out}
                mode: "0600"
              vars:
                ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
        """))
    extra = tmp_path / f"extra-{template}.json"
    extra.write_text(json.dumps(extra_vars or {}))
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(ANSIBLE_DIR / "inventory/example/hosts.yml"), str(play), "-e", f"@{extra}"],
        cwd=ANSIBLE_DIR, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    return out.read_text()


@pytest.mark.parametrize("token", ["", "an-admin-token-from-the-vault"])
def test_rendered_lb_config_matches_contract(tmp_path, token):
    """Render lb.toml from the example inventory and parse it as TOML."""
    cfg = tomllib.loads(render(tmp_path, "warren_lb", "lb.toml", "lb1", {"warren_lb_admin_token": token}))
    assert len(cfg["frontend"]) == len(cfg["backend"]) == 1, "no AMQPS frontend without TLS"
    backend = cfg["backend"][0]
    assert cfg["frontend"][0]["backend"] == backend["name"] == "rabbitmq"
    servers = backend["server"]
    assert [s["address"] for s in servers] == ["10.240.10.11:5672", "10.240.10.12:5672", "10.240.10.13:5672"]
    assert [s["role"] for s in servers] == ["primary", "backup", "backup"]
    assert backend["check"]["type"] == "rabbitmq"
    assert backend["check"]["password_file"].startswith("/etc/warren/")
    assert "password" not in backend["check"]
    assert "tls" not in backend["check"]
    # The token is named by its file, never written into lb.toml.
    assert cfg["admin"].get("token_file") == ("/etc/warren/lb-admin-token" if token else None)
    assert "token" not in cfg["admin"]


BROKER_ADDRESSES = ["10.240.10.11", "10.240.10.12", "10.240.10.13"]


def test_rendered_lb_config_with_tls_adds_an_amqps_passthrough_frontend(tmp_path):
    """rabbitmq_cluster_tls_enabled: the plain frontend stays and an amqps one on 5671
    relays to the brokers' 5671 (no [frontend.tls]: passthrough); checks stay plain.
    warren-lb check-config accepts the file."""
    text = render(tmp_path, "warren_lb", "lb.toml", "lb1", {"rabbitmq_cluster_tls_enabled": True})
    cfg = tomllib.loads(text)
    assert [(f["name"], f["bind"], f["backend"]) for f in cfg["frontend"]] == [
        ("amqp", "0.0.0.0:5672", "rabbitmq"), ("amqps", "0.0.0.0:5671", "rabbitmq_tls")]
    assert not any("tls" in f for f in cfg["frontend"])
    tls_backend = cfg["backend"][1]
    assert tls_backend["name"] == "rabbitmq_tls"
    assert [s["address"] for s in tls_backend["server"]] == [f"{a}:5671" for a in BROKER_ADDRESSES]
    assert [s["role"] for s in tls_backend["server"]] == ["primary", "backup", "backup"]
    assert all("send_proxy" not in s for s in tls_backend["server"]), "RabbitMQ takes no PROXY header by default"
    assert [b["check"]["port"] for b in cfg["backend"]] == [15672, 15672]
    assert not any("tls" in b["check"] for b in cfg["backend"])
    lb = binary("WARREN_LB_BIN", "warren-lb")
    (tmp_path / "lb-check-password").write_text("secret")
    local = text.replace("/etc/warren/lb-check-password", str(tmp_path / "lb-check-password"))
    (tmp_path / "lb-local.toml").write_text(local)
    checked = subprocess.run([lb, "check-config", str(tmp_path / "lb-local.toml")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout


def test_rendered_lb_config_tls_only_checks_over_tls(tmp_path):
    """rabbitmq_cluster_tls_only: only the amqps frontend, and the checks use
    [backend.check.tls] (docs/tls.md) against the management API's HTTPS port.
    warren-lb check-config accepts the file (with a CA of the test's in the CA's place)."""
    text = render(tmp_path, "warren_lb", "lb.toml", "lb1", {
        "rabbitmq_cluster_tls_enabled": True, "rabbitmq_cluster_tls_only": True})
    cfg = tomllib.loads(text)
    assert [f["name"] for f in cfg["frontend"]] == ["amqps"]
    (backend,) = cfg["backend"]
    assert [s["address"] for s in backend["server"]] == [f"{a}:5671" for a in BROKER_ADDRESSES]
    assert backend["check"]["port"] == 15671
    assert backend["check"]["tls"] == {"ca": "/etc/warren/tls/ca.pem", "verify": "required"}
    ca = tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(tmp_path / "ca.key"), "-out", str(ca), "-days", "30",
                    "-subj", "/CN=test CA"], check=True, capture_output=True, timeout=60)
    (tmp_path / "lb-check-password").write_text("secret")
    local = (text.replace("/etc/warren/lb-check-password", str(tmp_path / "lb-check-password"))
             .replace("/etc/warren/tls/ca.pem", str(ca)))
    (tmp_path / "lb-local.toml").write_text(local)
    checked = subprocess.run([binary("WARREN_LB_BIN", "warren-lb"), "check-config", str(tmp_path / "lb-local.toml")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout


def conf_lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_rendered_rabbitmq_conf_without_tls_has_no_ssl_key(tmp_path):
    lines = conf_lines(render(tmp_path, "rabbitmq_cluster", "rabbitmq.conf", "rabbit1"))
    assert "listeners.tcp.default = 5672" in lines and "management.tcp.port = 15672" in lines
    assert not [line for line in lines if "ssl" in line], lines


@pytest.mark.parametrize("tls_only", [False, True])
def test_rendered_rabbitmq_conf_with_tls(tmp_path, tls_only):
    """AMQPS 5671, management HTTPS 15671 and Prometheus TLS 15691 with the files the
    role installs; TLS-only closes every plain listener."""
    lines = conf_lines(render(tmp_path, "rabbitmq_cluster", "rabbitmq.conf", "rabbit1", {
        "rabbitmq_cluster_tls_enabled": True, "rabbitmq_cluster_tls_only": tls_only,
        "rabbitmq_cluster_plugins": ["rabbitmq_management", "rabbitmq_prometheus"]}))
    for key, value in (("listeners.ssl.default", "5671"), ("management.ssl.port", "15671"),
                       ("prometheus.ssl.port", "15691"), ("ssl_options.verify", "verify_peer"),
                       ("ssl_options.fail_if_no_peer_cert", "false")):
        assert f"{key} = {value}" in lines, lines
    for prefix in ("ssl_options", "management.ssl", "prometheus.ssl"):
        for key, file in (("cacertfile", "ca.pem"), ("certfile", "server.crt"), ("keyfile", "server.key")):
            assert f"{prefix}.{key} = /etc/rabbitmq/tls/{file}" in lines, lines
    plain = ["listeners.tcp.default = 5672", "management.tcp.port = 15672", "prometheus.tcp.port = 15692"]
    if tls_only:
        assert "listeners.tcp = none" in lines
        assert not set(plain) & set(lines), lines
    else:
        assert set(plain) <= set(lines), lines


def test_the_role_defaults_carry_the_check_profile():
    """warren_lb_check_* in the role defaults are lb/check-profile.toml's (written by
    scripts/check-profile): the rendered lb.toml's [backend.check] has its values."""
    problems = check_profile.drift("ansible")
    assert problems == [], f"{problems}: change lb/check-profile.toml, then run scripts/check-profile"


def example_inventory_locally(tmp_path, vault_text):
    """inventory/example copied, reached with connection=local, with `vault_text` as
    group_vars/all/vault.yml (as an operator following docs/ansible.md writes it)."""
    inv = tmp_path / "prod"
    shutil.copytree(ANSIBLE_DIR / "inventory/example", inv)
    with open(inv / "group_vars/all/main.yml", "a") as f:
        f.write("ansible_connection: local\nansible_python_interpreter: '{{ ansible_playbook_python }}'\n")
    (inv / "group_vars/all/vault.yml").write_text(vault_text)
    return inv


def test_a_missing_vault_variable_fails_naming_it(tmp_path):
    inv = example_inventory_locally(tmp_path, "vault_rabbitmq_cluster_admin_password: an-admin-password\n")
    proc = run_checks_only(inv)
    assert proc.returncode != 0, proc.output[-4000:]
    failure = " ".join(host_failure(proc.output, "rabbit1").split())
    assert "rabbitmq_cluster_erlang_cookie is required" in failure, proc.output[-4000:]
    assert "so is vault_rabbitmq_cluster_erlang_cookie" in failure, failure
    assert "group_vars/all/vault.yml" in failure, failure


def test_the_example_inventory_passes_the_checks_with_a_vault_as_documented(tmp_path):
    inv = example_inventory_locally(tmp_path, textwrap.dedent("""\
        vault_rabbitmq_cluster_erlang_cookie: 0123456789abcdef0123456789abcdef
        vault_rabbitmq_cluster_admin_password: an-admin-password
        """))
    proc = run_checks_only(inv)
    assert proc.returncode == 0, proc.output[-4000:]


def test_the_docs_encrypt_the_vault_variables_the_example_inventory_reads():
    documented = set(re.findall(r"encrypt_string --name (\S+)", " ".join(sh_blocks(DOCS.read_text()))))
    main = (ANSIBLE_DIR / "inventory/example/group_vars/all/main.yml").read_text()
    read = set(re.findall(r"\{\{\s*(vault_\w+)\s*\}\}", main))
    example_vault = set(re.findall(r"^(vault_\w+):", (ANSIBLE_DIR / "inventory/example/group_vars/all/vault.yml")
                                   .read_text(), re.M))
    assert documented == read == example_vault == {
        "vault_rabbitmq_cluster_erlang_cookie", "vault_rabbitmq_cluster_admin_password"}, (documented, read)
    assert set(re.findall(r"--name (\S+)", main)) == documented, "main.yml's comment shows the same commands"


def test_every_documented_playbook_command_names_a_playbook_here():
    for command in sh_blocks(DOCS.read_text()):
        if command.startswith("ansible-playbook"):
            playbook = command.split()[3]
            assert (ANSIBLE_DIR / playbook).is_file(), command


@pytest.mark.parametrize("extra,message", [
    (["-e", "drill_fault=kill"],
     "drill_fault 'kill' is not a warren-drill fault; expected one of none, crash, freeze, stop, partition, "
     "lb-crash, rolling-restart"),
    (["-e", "drill_fault=crash", "-e", "drill_victim=rabbit1"], "drill_victim is not supported"),
    (["-e", "drill_binary=/nonexistent/warren-drill"], "drill_binary: /nonexistent/warren-drill is not an executable"),
])
def test_drill_bad_input_fails_naming_it(extra, message):
    proc = run_playbook("drill.yml", ANSIBLE_DIR / "inventory/example/hosts.yml", *extra, timeout=300,
                        extra_env={"ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert proc.returncode != 0, proc.output[-4000:]
    assert message in " ".join(failure_lines(proc.output).split()), proc.output[-4000:]


def failure_lines(output):
    return "\n".join(l for l in output.splitlines() if l.startswith(("fatal:", "failed:")))


def test_a_drill_that_cannot_run_shows_stderr_and_leaves_no_report_directory(tmp_path):
    """A stand-in for warren-drill that fails the way it does when it cannot run (exit 2,
    the reason on stderr); the real one is run by test_converge.py."""
    fake = tmp_path / "warren-drill"
    fake.write_text("#!/bin/sh\necho 'warren-drill: error: no route to the brokers' >&2\nexit 2\n")
    fake.chmod(0o755)
    reports = tmp_path / "tmp"
    reports.mkdir()
    proc = run_playbook("drill.yml", ANSIBLE_DIR / "inventory/example/hosts.yml", "-e", f"drill_binary={fake}",
                        timeout=300, extra_env={"ANSIBLE_PYTHON_INTERPRETER": sys.executable, "TMPDIR": str(reports)})
    assert proc.returncode != 0, proc.output[-4000:]
    assert ("warren-drill could not run the drill (exit 2); stderr: warren-drill: error: no route to the brokers"
            in failure_lines(proc.output)), proc.output[-4000:]
    removed = proc.output.split("TASK [drill : Remove the temporary report directory when warren-drill wrote nothing]")
    assert len(removed) == 2 and removed[1].lstrip("* \n").startswith("changed: [localhost]"), proc.output[-3000:]
    assert not [p for p in reports.iterdir() if p.name.startswith("warren-drill-")], "an empty report directory was left"
