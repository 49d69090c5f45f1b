"""The RabbitMQ 4.0 line as the chart renders it (line read from broker.image.tag,
quorum defaults, no ha-* policy or mirror wait, feature flags and opt-in Khepri once
the cluster has formed), and its after-formation.sh run for real with sh against a
stub rabbitmqctl that records its calls."""

import json
import os
import subprocess

import pytest

from conftest import STS, configmap_file, render

Q40 = {"mode": "quorum", "broker": {"image": {"tag": "4.0.5"}}}
Q40_KHEPRI = {"mode": "quorum", "broker": {"image": {"tag": "4.0.5"}, "khepri": {"enabled": True}}}


@pytest.mark.parametrize("tag,line", [("4.0.5", "4.0"), ("v4.0-management", "4.0"), ("4.1.2", "4.1")])
def test_line_read_from_the_tag(tag, line):
    conf = configmap_file(render({"mode": "quorum", "broker": {"image": {"tag": tag}}}),
                          f"{STS}-config", "rabbitmq.conf")
    assert f"(mode = quorum, RabbitMQ {line})" in conf.splitlines()[0], conf.splitlines()[0]


def test_4_0_quorum_defaults_no_ha_policy_no_mirror_wait():
    r = render(Q40)
    conf = configmap_file(r, f"{STS}-config", "rabbitmq.conf")
    assert "default_queue_type = quorum" in conf.splitlines()
    defs = json.loads(configmap_file(r, f"{STS}-config", "definitions.json.in"))
    assert defs["policies"] == []
    assert defs["vhosts"][0]["default_queue_type"] == "quorum"
    assert "ha-" not in configmap_file(r, f"{STS}-config", "definitions.json.in")
    prestop = configmap_file(r, f"{STS}-config", "prestop.sh")
    assert "await_online_synchronized_mirror" not in prestop
    assert "await_online_quorum_plus_one" in prestop


def test_khepri_step_only_when_enabled():
    off = configmap_file(render(Q40), f"{STS}-config", "after-formation.sh")
    on = configmap_file(render(Q40_KHEPRI), f"{STS}-config", "after-formation.sh")
    assert "enable_feature_flag all" in off and "enable_feature_flag all" in on
    assert "khepri_db" not in off
    assert "enable_feature_flag --opt-in khepri_db" in on
    start = configmap_file(render(Q40), f"{STS}-config", "start.sh")
    assert 'sh "$(dirname "$0")/after-formation.sh" "$$" &' in start
    assert start.index("after-formation.sh") < start.index('exec "$server"')


def run_after_formation(tmp_path, values, counts):
    """after-formation.sh with a stub rabbitmqctl: `eval` answers the running-node
    counts in turn (the last one repeats), every call is recorded."""
    script = tmp_path / "after-formation.sh"
    script.write_text(configmap_file(render(values), f"{STS}-config", "after-formation.sh"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "counts").write_text("\n".join(str(c) for c in counts) + "\n")
    stub = bin_dir / "rabbitmqctl"
    stub.write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/calls
case "$*" in
  *eval*)
    n=$(head -n1 {tmp_path}/counts)
    [ "$(wc -l < {tmp_path}/counts)" -gt 1 ] && sed -i 1d {tmp_path}/counts
    echo "$n" ;;
esac
""")
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin")
    # the server's pid: this test process, alive throughout
    p = subprocess.run(["sh", str(script), str(os.getpid())], env=env, capture_output=True,
                       text=True, timeout=60)
    calls = (tmp_path / "calls").read_text().splitlines()
    return p, calls


def test_after_formation_waits_for_every_node_then_enables_flags(tmp_path):
    p, calls = run_after_formation(tmp_path, Q40_KHEPRI, [2, 3])
    assert p.returncode == 0, p.stderr
    evals = [c for c in calls if "eval" in c]
    assert len(evals) == 2, calls  # 2 of 3 running: waited, asked again
    assert calls[len(evals):] == ["-q enable_feature_flag all", "-q enable_feature_flag --opt-in khepri_db"], calls
    assert "3 nodes running, all stable feature flags enabled" in p.stderr
    assert "khepri_db enabled (metadata store: Khepri)" in p.stderr


def test_after_formation_without_khepri_leaves_it_alone(tmp_path):
    p, calls = run_after_formation(tmp_path, Q40, [3])
    assert p.returncode == 0, p.stderr
    assert [c for c in calls if "enable_feature_flag" in c] == ["-q enable_feature_flag all"], calls


def test_after_formation_stops_with_the_server(tmp_path):
    # a server pid that is gone (a reaped child): the script stops waiting at once
    # instead of outliving the broker for 30 minutes
    gone = subprocess.Popen(["true"])
    gone.wait()
    script = tmp_path / "after-formation.sh"
    script.write_text(configmap_file(render(Q40), f"{STS}-config", "after-formation.sh"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rabbitmqctl").write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/calls\necho 1\n")
    (bin_dir / "rabbitmqctl").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin")
    p = subprocess.run(["sh", str(script), str(gone.pid)], env=env, capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 0, p.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 1 and "eval" in calls[0], calls

