"""RabbitMQ 4.0 on Debian trixie hosts, as docs/ansible.md's section "RabbitMQ 4.0 on
trixie hosts" says: the five-host bed of test_converge.py (bed.py) on the trixie image,
whose apt installs Debian's rabbitmq-server 4.0.5 (Erlang 27).

Kept as small as proves the point (CI time): the mirrored refusal on the fresh hosts,
one converge + idempotence, the cluster and a quorum queue through warren-lb, one
rolling restart under a confirming publisher, and the Khepri switch (once, then
idempotent). The 3.x side of the refusals (Khepri on bookworm) is in test_converge.py.

Run alone:  python3 -m pytest -q -s ansible/tests/test_converge_trixie.py
"""

import base64
import json
import os
import re
import shutil
import ssl
import time
import urllib.request

import pytest

from bed import (BROKERS, LBS, amqp_roundtrip, failures, main_pid, make_bed, mgmt, peer_serial, recap,
                 section_hosts, tls_context)
from docs_commands import TRIXIE_SECTION, DocCommands
from publisher import ConfirmingPublisher, drain
from warren_testkit import poll

pytestmark = pytest.mark.skipif(
    os.environ.get("WARREN_ANSIBLE_CONVERGE") == "0",
    reason="WARREN_ANSIBLE_CONVERGE=0: the five-container converge is skipped",
)

DOCS = DocCommands(only=TRIXIE_SECTION)
CONVERGE = "ansible-playbook -i inventory/prod site.yml"
CONVERGE_BROKERS = "ansible-playbook -i inventory/prod site.yml --limit rabbitmq"
QUORUM = {"x-queue-type": "quorum"}
# Debian trixie's package (docs/decisions/broker-4.0-line.md: 4.0.5 on Erlang 27.3)
VERSION = "4.0.5"


def set_queue_mode(inventory, mode):
    group = inventory / "group_vars/rabbitmq.yml"
    text, n = re.subn(r"^rabbitmq_cluster_queue_mode: \S+", f"rabbitmq_cluster_queue_mode: {mode}",
                      group.read_text(), flags=re.M)
    assert n == 1, group.read_text()
    group.write_text(text)


def quorum_with_tls(b):
    """The 4.0 section's quorum mode, plus docs/ansible.md's TLS settings with a
    controller-made CA (and the Prometheus plugin, for its TLS listener)."""
    # "in group_vars/rabbitmq.yml set rabbitmq_cluster_queue_mode: quorum"
    set_queue_mode(b.site.inventory, "quorum")
    with open(b.site.inventory / "group_vars/all/main.yml", "a") as f:
        f.write("rabbitmq_cluster_tls_enabled: true\nrabbitmq_cluster_tls_generate: true\n")
    with open(b.site.inventory / "group_vars/rabbitmq.yml", "a") as f:
        f.write("rabbitmq_cluster_plugins: [rabbitmq_management, rabbitmq_prometheus]\n")
    b.tls_dir = b.site.inventory / "tls"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    yield from make_bed(tmp_path_factory, DOCS, "trixie", quorum_with_tls)


def one_line(text):
    return " ".join(text.split())


def feature_flags(bed, host):
    """{name: state} from the documented `rabbitmqctl list_feature_flags name state`."""
    out = bed.doc_on(host, "rabbitmqctl list_feature_flags name state")
    assert out.returncode == 0, out.stdout
    return dict(line.split() for line in out.stdout.splitlines() if re.fullmatch(r"\S+\s+(enabled|disabled)", line))


def cert_serial(bed, host):
    """The serial of the host's certificate on the controller."""
    return int(ssl._ssl._test_decode_cert(str(bed.tls_dir / f"{host}.crt"))["serialNumber"], 16)


def test_mirrored_on_4_0_is_refused_before_anything_is_installed(bed):
    """The example inventory's `mirrored` on trixie hosts: the run stops at the first
    check that knows the broker line, naming the variable, the version apt would
    install and the supported value, before rabbitmq-server is installed."""
    mirrored = bed.tmp / "site/inventory/mirrored"
    shutil.rmtree(mirrored, ignore_errors=True)
    shutil.copytree(bed.site.inventory, mirrored)
    set_queue_mode(mirrored, "mirrored")
    run = bed.playbook("trixie-mirrored", "site.yml", inventory=mirrored, timeout=600)
    assert run.returncode != 0, run.output[-3000:]
    for host in BROKERS:
        failed_task = run.output.split(f"fatal: [{host}]")[0].rsplit("TASK [", 1)[-1]
        assert failed_task.startswith("rabbitmq_cluster : Check the queue mode against the broker line]"), \
            run.output[-4000:]
    fail = one_line(failures(run.output))
    assert (f"rabbitmq_cluster_queue_mode: mirrored is not supported by RabbitMQ {VERSION}-" in fail
            and "(apt's candidate for rabbitmq-server)" in fail
            and "The supported value on 4.x is quorum" in fail), fail
    for host in BROKERS:
        installed = bed.exec(host, "dpkg-query", "--show", "--showformat=${db:Status-Abbrev}", "rabbitmq-server",
                             check=False)
        assert not installed.stdout.startswith("ii"), f"{host} installed rabbitmq-server before the refusal"


def test_converge_then_idempotent_on_4_0(bed):
    first = bed.doc("trixie-converge", CONVERGE)
    assert first.returncode == 0, failures(first.output) + first.output[-3000:]
    assert sum(r["changed"] for r in recap(first.output).values()) > 0
    second = bed.doc("trixie-idempotence", CONVERGE)
    assert second.returncode == 0, failures(second.output) + second.output[-3000:]
    rc = recap(second.output)
    assert set(BROKERS + LBS) <= set(rc), second.output[-3000:]
    changed = {h: r["changed"] for h, r in rc.items() if r["changed"]}
    assert not changed, f"second run changed something: {changed}\n{second.output[-8000:]}"


def test_the_generated_certificates_are_in_place(bed):
    """The CA and each broker's certificate on the controller; on the broker the key
    is 0600 and owned by rabbitmq."""
    assert (bed.tls_dir / "ca.pem").is_file() and (bed.tls_dir / "ca.key").is_file()
    for host in BROKERS:
        cert = ssl._ssl._test_decode_cert(str(bed.tls_dir / f"{host}.crt"))
        sans = {v for _, v in cert["subjectAltName"]}
        assert {host, bed.ip(host)} <= sans, cert["subjectAltName"]
        mode = bed.exec(host, "stat", "-c", "%a %U", "/etc/rabbitmq/tls/server.key").stdout.split()
        assert mode == ["600", "rabbitmq"], mode


def test_amqps_through_warren_lb_verifies_the_broker_certificate(bed):
    """warren-lb's amqps frontend (5671) relays the TLS session to the primary broker
    (rabbit1): the certificate the client verifies against the CA is rabbit1's, and a
    quorum-queue round trip works over it. A client trusting another CA is refused."""
    import pika

    ctx = tls_context(bed)
    got = poll("an AMQPS round trip through the VIP", lambda: amqp_roundtrip(
        bed, "wans-amqps-vip", b"over-tls", QUORUM, port=5671, ssl_options=pika.SSLOptions(ctx, "rabbit1")),
        60, interval=2)
    assert got == b"over-tls"
    assert peer_serial(bed.vip, 5671, ctx, "rabbit1") == cert_serial(bed, "rabbit1")
    with pytest.raises(ssl.SSLCertVerificationError):
        peer_serial(bed.vip, 5671, ssl.create_default_context(), "rabbit1")


def test_management_and_prometheus_over_https(bed):
    ctx = tls_context(bed)
    for host in BROKERS:
        req = urllib.request.Request(f"https://{bed.ip(host)}:15671/api/overview")
        req.add_header("Authorization", "Basic " + base64.b64encode(
            f"admin:{bed.password}".encode()).decode())
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            assert json.loads(resp.read())["cluster_name"] == "warren"
        with urllib.request.urlopen(f"https://{bed.ip(host)}:15691/metrics", timeout=10, context=ctx) as resp:
            assert b"rabbitmq_" in resp.read()


def test_a_renewed_certificate_reaches_new_connections_without_a_restart(bed):
    """docs/ansible.md's renewal: delete the host's certificate on the controller and
    converge. rabbit2 gets a new serial; the role clears its PEM cache instead of
    restarting it: a new AMQPS connection sees the new serial, the broker's pid is
    the same, and no other broker was touched."""
    ctx = tls_context(bed)
    old = cert_serial(bed, "rabbit2")
    assert peer_serial(bed.ip("rabbit2"), 5671, ctx) == old
    pid = main_pid(bed, "rabbit2", "rabbitmq-server")
    (bed.tls_dir / "rabbit2.crt").unlink()
    run = bed.playbook("trixie-tls-renew", "site.yml", "--limit", "rabbitmq")
    assert run.returncode == 0, failures(run.output) + run.output[-3000:]
    new = cert_serial(bed, "rabbit2")
    assert new != old
    cleared = section_hosts(run.output, "rabbitmq_cluster : Clear the TLS PEM cache")
    assert cleared == {"rabbit2": "changed"}, f"{cleared}\n{run.output[-4000:]}"
    assert "RUNNING HANDLER [rabbitmq_cluster : Restart rabbitmq-server]" not in run.output
    assert peer_serial(bed.ip("rabbit2"), 5671, ctx) == new
    assert main_pid(bed, "rabbit2", "rabbitmq-server") == pid, "rabbit2 was restarted"


def test_three_4_0_5_nodes_without_ha_policies_and_khepri_off(bed):
    status = json.loads(bed.exec("rabbit3", "rabbitmqctl", "cluster_status", "--formatter", "json").stdout)
    expected = sorted(f"rabbit@{h}" for h in BROKERS)
    assert sorted(status["running_nodes"]) == expected, status
    versions = {n: v["rabbitmq_version"] for n, v in status["versions"].items()}
    assert versions == {n: VERSION for n in expected}, versions
    assert all(v["erlang_version"].startswith("27.") for v in status["versions"].values()), status["versions"]
    listed = bed.doc_on("rabbit2", "rabbitmqctl cluster_status")
    assert listed.returncode == 0 and all(n in listed.stdout for n in expected), listed.stdout
    assert mgmt(bed, "rabbit1", "policies") == [], "quorum mode on 4.x sets no policy"
    flags = json.loads(bed.exec("rabbit1", "rabbitmqctl", "list_feature_flags", "name", "state", "stability",
                                "--formatter", "json").stdout)
    not_enabled = [f["name"] for f in flags if f["stability"] in ("stable", "required") and f["state"] != "enabled"]
    assert not not_enabled, f"stable feature flags left disabled: {not_enabled}"
    assert feature_flags(bed, "rabbit3")["khepri_db"] == "disabled", "Khepri is off by default on 4.0"


def test_a_quorum_queue_through_warren_lb(bed):
    """Declared, published with a confirm and consumed through the VIP, i.e. through
    warren-lb; the broker made it a quorum queue with a member on every node."""
    queue = "wans-quorum-vip"
    got = poll("a quorum-queue round trip through the VIP",
                   lambda: amqp_roundtrip(bed, queue, b"quorum-through-warren-lb", QUORUM, keep=True), 60, interval=2)
    try:
        assert got == b"quorum-through-warren-lb"
        q = mgmt(bed, "rabbit1", f"queues/%2F/{queue}")
        assert q["type"] == "quorum", q
        assert sorted(q["members"]) == sorted(f"rabbit@{h}" for h in BROKERS), q
    finally:
        mgmt(bed, "rabbit1", f"queues/%2F/{queue}", method="DELETE")


def test_rolling_restart_under_publishing_loses_nothing_on_4_0(bed):
    """The documented rolling restart while a confirming publisher writes to a quorum
    queue through the VIP: each broker restarted (uptime shorter than the run), the
    mirror waits skipped, the quorum-critical check passed before each stop, and
    every confirmed message is still in the queue."""
    queue = "wans-rolling-quorum"
    mgmt(bed, "rabbit1", f"queues/%2F/{queue}", method="PUT", body={"durable": True, "arguments": QUORUM})
    poll("3 quorum members online", lambda: len(
        mgmt(bed, "rabbit1", f"queues/%2F/{queue}").get("online", [])) == 3, 60)
    pub = ConfirmingPublisher([bed.vip], queue, "admin", bed.password).start()
    started = time.monotonic()
    try:
        poll("the publisher to get confirms", lambda: len(pub.confirmed) > 20, 60)
        run = bed.doc("trixie-rolling-restart", "ansible-playbook -i inventory/prod rolling_restart.yml")
    finally:
        pub.stop()
    assert run.returncode == 0, failures(run.output) + run.output[-3000:]
    # A node just restarted is listed before its stats are in (no "uptime" yet).
    nodes = poll("every broker's uptime in the management API", lambda: (
        lambda ns: ns if len(ns) == 3 and all("uptime" in n for n in ns) else None)(
        mgmt(bed, "rabbit1", "nodes")), 60)
    uptimes = {n["name"]: n["uptime"] / 1000 for n in nodes}
    elapsed = time.monotonic() - started
    assert all(u < elapsed for u in uptimes.values()), f"not every broker restarted: uptimes {uptimes}, run {elapsed:.0f} s"
    assert run.output.count("TASK [rabbitmq_cluster : Restart rabbitmq-server]") == 3, "one broker at a time"
    for task, status in (("Wait until this node's mirrored queues have a synchronised mirror", "skipping"),
                         ("Wait until every mirrored queue is synchronised again", "skipping"),
                         ("Check that this node is not quorum-critical (4.x)", "ok"),
                         ("Wait until quorum queues are healthy again", "ok")):
        seen = section_hosts(run.output, f"rabbitmq_cluster : {task}")
        assert seen == {h: status for h in BROKERS}, f"{task}: {seen}\n{run.output[-4000:]}"
    got = drain(bed.ip("rabbit2"), queue, "admin", bed.password)
    lost = pub.lost(got)
    print(f"4.0 rolling restart: {len(pub.confirmed)} confirmed, {len(got)} in the queue, lost {len(lost)}, "
          f"{len(pub.errors)} reconnects, {run.seconds:.0f}s")
    assert len(pub.confirmed) > 100
    assert not lost, f"lost {len(lost)} confirmed messages: {lost[:20]}"


def test_the_khepri_switch_enables_khepri_db_once(bed):
    """`rabbitmq_cluster_khepri: true` in group_vars/rabbitmq.yml and the documented
    brokers-only converge: the seed enables khepri_db (every node reports it), the
    cluster still serves quorum queues, and the same run again changes nothing."""
    group = bed.site.inventory / "group_vars/rabbitmq.yml"
    with open(group, "a") as f:
        f.write("rabbitmq_cluster_khepri: true\n")
    first = bed.doc("trixie-khepri", CONVERGE_BROKERS)
    assert first.returncode == 0, failures(first.output) + first.output[-3000:]
    enabled = section_hosts(first.output, "rabbitmq_cluster : Enable Khepri (the khepri_db feature flag)")
    assert enabled == {"rabbit1": "changed"}, f"{enabled}\n{first.output[-4000:]}"
    for host in BROKERS:
        assert feature_flags(bed, host)["khepri_db"] == "enabled", host
    got = poll("a quorum-queue round trip on Khepri", lambda: amqp_roundtrip(
        bed, "wans-quorum-khepri", b"on-khepri", QUORUM), 60, interval=2)
    assert got == b"on-khepri"
    again = bed.doc("trixie-khepri-again", CONVERGE_BROKERS)
    assert again.returncode == 0, failures(again.output) + again.output[-3000:]
    changed = {h: r["changed"] for h, r in recap(again.output).items() if r["changed"]}
    assert not changed, f"the second run changed something: {changed}\n{again.output[-6000:]}"


def test_every_documented_4_0_command_was_run(bed):
    missing = DOCS.not_taken()
    assert not missing, f"docs/ansible.md's 4.0 commands the suite never ran: {missing}"
