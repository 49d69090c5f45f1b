"""Converge site.yml on five Debian bookworm (RabbitMQ 3.10) systemd "VMs" (containers)
the way docs/ansible.md says, then idempotence, verify, day-2 operations and a drill.

The bed (bed.py): containers from the offline base image reached over ssh, and an
inventory made by the docs' own commands (copy of inventory/example, vault.yml from
`ansible-vault encrypt_string` with a password file), then edited as the docs say
(addresses, VIP, binaries). Every command of the docs' sh blocks (but those of the
RabbitMQ 4.0 section, test_converge_trixie.py's) is run from docs_commands.DocCommands,
so docs and tests cannot drift.

Run alone:  python3 -m pytest -q ansible/tests/test_converge.py
"""

import json
import os
import pathlib
import re
import shutil
import tomllib

import pytest

from bed import (ANSIBLE_DIR, BROKERS, LBS, REPO_DIR, amqp_roundtrip, failures, main_pid, make_bed, mgmt, recap,
                 section_hosts, vip_holders)
from docs_commands import TRIXIE_SECTION, DocCommands
from publisher import ConfirmingPublisher, drain
from warren_testkit import poll

# Runs by default; WARREN_ANSIBLE_CONVERGE=0 skips it for a quick static-only run.
pytestmark = pytest.mark.skipif(
    os.environ.get("WARREN_ANSIBLE_CONVERGE") == "0",
    reason="WARREN_ANSIBLE_CONVERGE=0: the five-container converge is skipped",
)

DOCS = DocCommands(without=TRIXIE_SECTION)
CONVERGE = "ansible-playbook -i inventory/prod site.yml"
MANUAL_SYNC_QUEUE = "wans-manual-sync"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    yield from make_bed(tmp_path_factory, DOCS, "bookworm")


def test_converge_then_idempotent(bed):
    first = bed.doc("converge", CONVERGE)
    assert first.returncode == 0, failures(first.output) + first.output[-3000:]
    assert sum(r["changed"] for r in recap(first.output).values()) > 0
    second = bed.doc("idempotence", CONVERGE)
    assert second.returncode == 0, failures(second.output) + second.output[-3000:]
    rc = recap(second.output)
    assert set(BROKERS + LBS) <= set(rc), second.output[-3000:]
    changed = {h: r["changed"] for h, r in rc.items() if r["changed"]}
    assert not changed, f"second run changed something: {changed}\n{second.output[-8000:]}"
    preview = bed.doc("check-diff", "ansible-playbook -i inventory/prod site.yml --check --diff")
    assert preview.returncode == 0, failures(preview.output) + preview.output[-3000:]
    changed = {h: r["changed"] for h, r in recap(preview.output).items() if r["changed"]}
    assert not changed, f"--check --diff on a converged site reports changes: {changed}\n{preview.output[-6000:]}"


def test_cluster_of_three_with_policy_and_no_guest(bed):
    status = json.loads(bed.exec("rabbit3", "rabbitmqctl", "cluster_status", "--formatter", "json").stdout)
    expected = sorted(f"rabbit@{h}" for h in BROKERS)
    assert sorted(status["running_nodes"]) == expected
    assert sorted(status["disk_nodes"]) == expected
    assert status["cluster_name"] == "warren"
    policies = mgmt(bed, "rabbit2", "policies/%2F")
    ha = [p for p in policies if p["name"] == "ha-all"]
    assert ha and ha[0]["definition"]["ha-mode"] == "all" and ha[0]["pattern"] == ".*"
    users = {u["name"]: u for u in mgmt(bed, "rabbit1", "users")}
    assert "guest" not in users
    assert "administrator" in str(users["admin"]["tags"])
    cookie = bed.exec("rabbit2", "stat", "-c", "%a %U %s", "/var/lib/rabbitmq/.erlang.cookie").stdout.split()
    assert cookie == ["400", "rabbitmq", "64"], "the vault's cookie: openssl rand -hex 32"


def test_khepri_on_3_10_is_refused_naming_the_version(bed):
    """`rabbitmq_cluster_khepri: true` in the inventory of bookworm brokers (3.10): the
    run stops at the first check that knows the broker line, on every broker, naming
    the variable, the installed version and the value 3.x supports."""
    khepri = bed.tmp / "site/inventory/khepri"
    shutil.rmtree(khepri, ignore_errors=True)
    shutil.copytree(bed.site.inventory, khepri)
    with open(khepri / "group_vars/rabbitmq.yml", "a") as f:
        f.write("rabbitmq_cluster_khepri: true\n")
    run = bed.playbook("khepri-on-3x", "site.yml", "--limit", "rabbitmq", inventory=khepri, timeout=600)
    assert run.returncode != 0, run.output[-3000:]
    for host in BROKERS:
        failed_task = run.output.split(f"fatal: [{host}]")[0].rsplit("TASK [", 1)[-1]
        assert failed_task.startswith("rabbitmq_cluster : Check the Khepri switch against the broker line]"), \
            run.output[-4000:]
    fail = " ".join(failures(run.output).split())
    assert ("rabbitmq_cluster_khepri: true needs RabbitMQ 4.0 or later, and this host has 3.10.8-" in fail
            and "(the installed rabbitmq-server package)" in fail and "Supported on 3.x: false" in fail), fail
    assert "TASK [rabbitmq_cluster : Write the configuration]" not in run.output, "refused before any change"


def test_a_queue_is_mirrored_on_all_brokers(bed):
    mgmt(bed, "rabbit1", "queues/%2F/wans-mirrored", method="PUT", body={"durable": True})
    try:
        def mirrors():
            q = mgmt(bed, "rabbit1", "queues/%2F/wans-mirrored")
            return q if len(q.get("synchronised_slave_nodes", [])) == 2 else None
        poll("2 synchronised mirrors", mirrors, 60)
        rows = json.loads(bed.exec("rabbit2", "rabbitmqctl", "list_queues", "--quiet", "--formatter", "json",
                                   "name", "policy").stdout)
        assert {"name": "wans-mirrored", "policy": "ha-all"} in rows, rows
    finally:
        mgmt(bed, "rabbit1", "queues/%2F/wans-mirrored", method="DELETE")


def test_lb_and_vip_run_unprivileged_and_one_host_owns_the_vip(bed):
    for host in LBS:
        for unit, user in (("warren-lb", "warren-lb"), ("warren-vip", "warren-vip")):
            assert bed.exec(host, "systemctl", "is-active", unit, check=False).stdout.strip() == "active", \
                bed.exec(host, "journalctl", "-u", unit, "--no-pager", "-n", "30", check=False).stdout
            pid = main_pid(bed, host, unit)
            assert bed.exec(host, "ps", "-o", "user=", "-p", str(pid)).stdout.strip() == user
    holders = poll("the VIP on exactly one lb host", lambda: (lambda h: h if len(h) == 1 else None)(vip_holders(bed)), 60)
    assert holders == ["lb1"], "lb1 has the highest default priority (150)"


def test_publish_and_consume_through_the_vip(bed):
    got = poll("an AMQP round trip through the VIP",
                   lambda: amqp_roundtrip(bed, "wans-vip-roundtrip", b"through-the-vip"), 60, interval=2)
    assert got == b"through-the-vip"


def test_config_change_reloads_without_restart(bed):
    before = {h: main_pid(bed, h, "warren-lb") for h in LBS}
    try:
        run = bed.playbook("reload", "site.yml", "--limit", "warren_lb", "-e", "warren_lb_check_inter=2s")
        assert run.returncode == 0, failures(run.output) + run.output[-3000:]
        assert "RUNNING HANDLER [warren_lb : Reload warren-lb]" in run.output
        assert "RUNNING HANDLER [warren_lb : Restart warren-lb]" not in run.output
        survived = {}
        for h in LBS:
            assert 'inter = "2s"' in bed.exec(h, "cat", "/etc/warren/lb.toml").stdout
            state = bed.exec(h, "systemctl", "is-active", "warren-lb", check=False).stdout.strip()
            survived[h] = state == "active" and main_pid(bed, h, "warren-lb") == before[h]
    finally:
        # the documented lb-hosts run puts the default back; a dead lb is started again
        back = bed.doc("reload-back", "ansible-playbook -i inventory/prod site.yml --limit warren_lb")
    assert back.returncode == 0, failures(back.output)
    assert all(survived.values()), (
        f"warren-lb was restarted instead of reloaded on {[h for h, ok in survived.items() if not ok]}")
    for h in LBS:
        journal = bed.exec(h, "journalctl", "-u", "warren-lb", "--no-pager", check=False).stdout
        assert "reload ok: generation" in journal, journal[-2000:]


UNIT = "/etc/systemd/system/warren-lb.service"


def process_environment(bed, host, pid):
    raw = bed.exec(host, "cat", f"/proc/{pid}/environ").stdout
    return [e for e in raw.split("\0") if e]


def test_a_changed_unit_is_applied_before_the_restart(bed):
    """Issue 21, defect 1: a unit that differs from the template is rewritten, and the
    restarted warren-lb runs the unit on disk, not systemd's stale copy of the old one."""
    host = "lb1"
    bed.exec(host, "sed", "-i", r"/^\[Service\]/a Environment=MARK=stale", UNIT)
    bed.exec(host, "systemctl", "daemon-reload")
    # the fault: systemd now holds a definition with MARK, as after a hand edit
    assert "MARK=stale" in bed.exec(host, "systemctl", "show", "-p", "Environment", "warren-lb").stdout
    before = main_pid(bed, host, "warren-lb")
    run = bed.playbook("stale-unit", "site.yml", "--limit", host)
    assert run.returncode == 0, failures(run.output) + run.output[-3000:]
    reload_at = run.output.find("RUNNING HANDLER [warren_lb : Reload systemd units for warren-lb]")
    restart_at = run.output.find("RUNNING HANDLER [warren_lb : Restart warren-lb]")
    assert 0 <= reload_at < restart_at, f"handlers ran out of order:\n{run.output[-5000:]}"
    assert "MARK" not in bed.exec(host, "cat", UNIT).stdout, "the template replaced the edited unit"
    after = poll("warren-lb active again", lambda: bed.exec(
        host, "systemctl", "is-active", "warren-lb", check=False).stdout.strip() == "active"
        and main_pid(bed, host, "warren-lb"), 60)
    assert after != before, "the unit change restarted warren-lb"
    env = process_environment(bed, host, after)
    assert not [e for e in env if e.startswith("MARK=")], f"the running warren-lb has the old unit's environment: {env}"
    assert "MARK" not in bed.exec(host, "systemctl", "show", "-p", "Environment", "warren-lb").stdout
    assert bed.exec(host, "systemctl", "show", "-p", "NeedDaemonReload", "--value", "warren-lb").stdout.strip() == "no"


@pytest.fixture
def manual_sync_queue(bed):
    """A mirrored queue with ha-sync-mode manual holding 50 messages: after each broker
    restart its mirror there stays unsynchronised until someone requests sync_queue
    (what happens to any queue under rabbitmq-server#8974)."""
    bed.exec("rabbit1", "rabbitmqctl", "set_policy", "--priority", "1", "--apply-to", "queues", MANUAL_SYNC_QUEUE,
             f"^{MANUAL_SYNC_QUEUE}$", json.dumps({"ha-mode": "all", "ha-sync-mode": "manual",
                                                   "ha-promote-on-shutdown": "when-synced",
                                                   "ha-promote-on-failure": "when-synced"}))
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=bed.ip("rabbit2"), credentials=pika.PlainCredentials("admin", bed.password)))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(MANUAL_SYNC_QUEUE, durable=True)
    for i in range(50):
        ch.basic_publish("", MANUAL_SYNC_QUEUE, str(i).encode(), pika.BasicProperties(delivery_mode=2))
    conn.close()
    poll("the manual-sync queue on all brokers", lambda: len(
        mgmt(bed, "rabbit1", f"queues/%2F/{MANUAL_SYNC_QUEUE}").get("synchronised_slave_nodes", [])) == 2, 60)
    yield MANUAL_SYNC_QUEUE
    bed.exec("rabbit1", "rabbitmqctl", "sync_queue", MANUAL_SYNC_QUEUE, check=False)
    got = drain(bed.ip("rabbit2"), MANUAL_SYNC_QUEUE, "admin", bed.password)
    bed.exec("rabbit1", "rabbitmqctl", "clear_policy", MANUAL_SYNC_QUEUE, check=False)
    assert got == set(range(50)), f"the manual-sync queue lost messages: {sorted(set(range(50)) - got)}"


def test_rolling_restarts_under_publishing_lose_nothing(bed, manual_sync_queue):
    """The documented rolling restart, then the documented upgrade run, back to back,
    while a confirming publisher runs through the VIP: every confirmed message is still
    in the mirrored queue afterwards, and the queue that only syncs on request was
    synchronised by the wait after every broker (issue 21, defect 2)."""
    queue = "wans-rolling"
    mgmt(bed, "rabbit1", f"queues/%2F/{queue}", method="PUT", body={"durable": True})
    poll("2 synchronised mirrors", lambda: len(
        mgmt(bed, "rabbit1", f"queues/%2F/{queue}").get("synchronised_slave_nodes", [])) == 2, 60)
    pub = ConfirmingPublisher([bed.vip], queue, "admin", bed.password).start()
    runs = []
    try:
        poll("the publisher to get confirms", lambda: len(pub.confirmed) > 20, 60)
        for name, command in (
                ("rolling_restart", "ansible-playbook -i inventory/prod rolling_restart.yml"),
                ("rolling_upgrade",
                 "ansible-playbook -i inventory/prod rolling_restart.yml -e rabbitmq_cluster_upgrade=true")):
            run = bed.doc(name, command)
            runs.append(run)
            if run.returncode != 0:
                break
    finally:
        pub.stop()
    for run in runs:
        assert run.returncode == 0, failures(run.output) + run.output[-3000:]
        assert run.output.count("TASK [rabbitmq_cluster : Restart rabbitmq-server]") == 3, "one broker at a time"
        requested = section_hosts(run.output, "rabbitmq_cluster : Show the sync requests")
        assert requested == {h: "ok" for h in BROKERS}, (
            f"the wait requested sync_queue only on {requested}:\n{run.output[-5000:]}")
        assert f"queue '{manual_sync_queue}' in vhost '/'" in run.output
    assert len(runs) == 2
    got = drain(bed.ip("rabbit2"), queue, "admin", bed.password)
    lost = pub.lost(got)
    print(f"two rolling restarts: {len(pub.confirmed)} confirmed, {len(got)} in the queue, lost {len(lost)}, "
          f"{len(pub.errors)} reconnects, {sum(r.seconds for r in runs):.0f}s")
    assert len(pub.confirmed) > 100
    assert not lost, f"lost {len(lost)} confirmed messages: {lost[:20]}"
    q = mgmt(bed, "rabbit1", f"queues/%2F/{manual_sync_queue}")
    assert len(q.get("synchronised_slave_nodes", [])) == 2, q


def test_sync_timeout_from_the_inventory_stops_naming_the_queue(bed, manual_sync_queue):
    """rabbitmq_cluster_sync_timeout set in the inventory governs the wait; at the
    timeout the run stops, naming the queue still behind and how far, and leaves the
    other brokers untouched. (grace > timeout: no sync is requested, so the queue
    that only syncs on request stays behind.)"""
    short = bed.tmp / "site/inventory/short-timeout"
    shutil.rmtree(short, ignore_errors=True)
    shutil.copytree(bed.site.inventory, short)
    group = short / "group_vars/rabbitmq.yml"
    group.write_text(group.read_text().replace("rabbitmq_cluster_sync_grace: 5\n", "")
                     + "rabbitmq_cluster_sync_timeout: 20\nrabbitmq_cluster_sync_grace: 600\n")
    run = bed.playbook("sync_timeout", "rolling_restart.yml", inventory=short, timeout=400)
    assert run.returncode != 0, run.output[-3000:]
    fail = failures(run.output)
    failed_task = run.output.split("fatal: [rabbit1]")[0].rsplit("TASK [", 1)[-1]
    assert failed_task.startswith("rabbitmq_cluster : Wait until every mirrored queue is synchronised again]"), \
        run.output[-4000:]
    assert "still not synchronised after" in fail and "(rabbitmq_cluster_sync_timeout = 20 s)" in fail, fail
    assert f"queue '{manual_sync_queue}' in vhost '/': 1 of 2 mirrors synchronised (behind: rabbit@rabbit1" in fail, fail
    assert "the queue holds 50 messages" in fail, fail
    assert not re.search(r"retr(y|ies)|attempts", fail), fail
    assert run.output.count("TASK [rabbitmq_cluster : Restart rabbitmq-server]") == 1, "rabbit2, rabbit3 untouched"
    status = json.loads(bed.exec("rabbit2", "rabbitmqctl", "cluster_status", "--formatter", "json").stdout)
    assert len(status["running_nodes"]) == 3, status


def drill_report_path(output):
    m = re.search(r"PASS; report: (\S+drill-report\.json)", output)
    return pathlib.Path(m.group(1)) if m else None


def test_the_documented_drill_passes_and_reports_outside_the_checkout(bed):
    """Issue 21, defect 3: the docs' drill command runs a real warren-drill fault over
    ssh (identity and known_hosts from the inventory) and writes its report to a
    temporary directory."""
    DOCS.take("cargo build --release -p warren-drill")  # here: scripts/test's debug build (bed.drill_bin)
    run = bed.doc("drill", "ansible-playbook -i inventory/prod drill.yml -e drill_fault=crash", timeout=600)
    assert run.returncode == 0, failures(run.output) + run.output[-4000:]
    report = drill_report_path(run.output)
    assert report and report.is_file(), run.output[-3000:]
    try:
        assert REPO_DIR not in report.parents, f"the report went into the checkout: {report}"
        data = json.loads(report.read_text())
        accounting = data["accounting"]
        print(f"drill: {json.dumps(accounting)[:400]}, master {data['master_before']} -> {data['master_after']}")
        assert accounting["lost"] == 0 and accounting["confirmed"] > 0, accounting
        assert data["fault"] == "crash" and data["target"].startswith("ssh"), data["target"]
        # PASS (exit 0) includes warren-drill's own check that the fault took effect
        # (INVALID, exit 3, otherwise); the report says what its witness saw.
        assert data["fault_effect"]["took_effect"] is True, data["fault_effect"]
    finally:
        shutil.rmtree(report.parent, ignore_errors=True)
    assert not (ANSIBLE_DIR / "drill-report.json").exists()


def test_a_failing_drill_shows_warren_drills_stderr(bed):
    empty = bed.tmp / "empty_known_hosts"
    empty.write_text("")
    run = bed.playbook("drill-fails", "drill.yml", "-e", "drill_fault=crash", "-e", f"drill_ssh_known_hosts={empty}",
                       timeout=300)
    assert run.returncode != 0, run.output[-3000:]
    fail = failures(run.output)
    assert "warren-drill could not run the drill (exit 2); stderr: warren-drill: error:" in fail, fail
    assert "Host key verification failed" in fail, fail
    assert "Remove the temporary report directory when warren-drill wrote nothing" in run.output
    assert section_hosts(run.output, "drill : Remove the temporary report directory when warren-drill wrote nothing") \
        == {"localhost": "changed"}, run.output[-3000:]


def lb_servers(bed, host):
    cfg = tomllib.loads(bed.exec(host, "cat", "/etc/warren/lb.toml").stdout)
    return [s["address"] for s in cfg["backend"][0]["server"]]


def test_remove_and_add_a_broker_as_documented(bed):
    """Day-2: remove rabbit3 (stop, forget, inventory without it, lb hosts), then add it
    back as a fresh host (its data wiped, as a new VM would be) with the docs' commands."""
    gone = "rabbit3"
    hosts = bed.site.inventory / "hosts.yml"
    full = hosts.read_text()
    stopped = bed.doc_on(gone, "systemctl stop rabbitmq-server")
    assert stopped.returncode == 0, stopped.stdout
    forgot = bed.doc_on("rabbit1", "rabbitmqctl forget_cluster_node rabbit@<name>", name=gone)
    assert forgot.returncode == 0, forgot.stdout
    try:
        hosts.write_text(re.sub(rf"^\s+{gone}:\n\s+ansible_host: \S+\n", "", full, flags=re.M))
        assert gone not in hosts.read_text()
        lbs = bed.doc("remove-broker-lb", "ansible-playbook -i inventory/prod site.yml --limit warren_lb")
        assert lbs.returncode == 0, failures(lbs.output)
        assert bed.ip(gone) + ":5672" not in lb_servers(bed, "lb1")
        assert len(lb_servers(bed, "lb2")) == 2
    finally:
        hosts.write_text(full)
    bed.exec(gone, "rm", "-rf", "/var/lib/rabbitmq/mnesia")
    add = bed.doc("add-broker", "ansible-playbook -i inventory/prod site.yml --limit 'rabbitmq:warren_lb'")
    assert add.returncode == 0, failures(add.output) + add.output[-3000:]
    assert section_hosts(add.output, "rabbitmq_cluster : Join the cluster").get(gone) == "changed", add.output[-5000:]
    status = bed.doc_on("rabbit2", "rabbitmqctl cluster_status")
    assert status.returncode == 0, status.stdout
    running = status.stdout.split("Running Nodes", 1)[1].split("\n\n", 1)[1].split("\n\n", 1)[0]
    assert sorted(running.split()) == sorted(f"rabbit@{h}" for h in BROKERS), status.stdout
    assert len(lb_servers(bed, "lb1")) == 3


def test_every_documented_command_was_run(bed):
    missing = DOCS.not_taken()
    assert not missing, f"docs/ansible.md commands the suite never ran: {missing}"
