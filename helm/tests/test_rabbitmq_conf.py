"""The rendered rabbitmq.conf is checked by RabbitMQ's own config translator
(cuttlefish + the rabbit / k8s peer discovery / management / prometheus schemas)
from the rabbitmq-server installed by scripts/install-deps (Debian, 3.10)."""

import glob
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SCENARIOS, STS, configmap_file, render

ESCRIPT = Path(__file__).with_name("cuttlefish_check.escript")
# Keys newer than the Debian 3.10 schemas used here (present in 3.13+):
NEWER_KEYS = {"default_queue_type"}


def plugins_dir() -> str:
    found = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins"))
    if not found or not shutil.which("escript"):
        pytest.fail("rabbitmq-server's plugins or escript not found: install Debian's "
                    "rabbitmq-server (scripts/install-deps does)")
    return found[-1]


def write_conf(tmp_path, name, text):
    defs = tmp_path / "definitions.json"
    defs.write_text("{}")
    lines = []
    for line in text.replace("/etc/rabbitmq/definitions.json", str(defs)).splitlines():
        key = line.split("=", 1)[0].strip()
        if key in NEWER_KEYS:
            continue
        lines.append(line)
    path = tmp_path / f"{name}.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_check(plugins, files):
    return subprocess.run(
        ["escript", str(ESCRIPT), plugins, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rendered_rabbitmq_conf_is_valid_for_rabbitmq(tmp_path):
    plugins = plugins_dir()
    files = []
    for name in ("default", "quorum-3.13", "five-nodes-no-persistence"):
        text = configmap_file(render(SCENARIOS[name]), f"{STS}-config", "rabbitmq.conf")
        files.append(write_conf(tmp_path, name, text))
    # the checker must be able to fail: a misspelt key and a bad value
    bad = write_conf(tmp_path, "bad", "cluster_partition_handlin = pause_minority\nnet_ticktime = soon\n")
    p = run_check(plugins, files + [bad])
    out = p.stdout + p.stderr
    for f in files:
        assert f"{f} OK" in out, out
    assert f"{bad} ERROR" in out, out
    assert "cluster_partition_handlin" in out
    assert p.returncode == 1


def test_newer_keys_only_in_quorum_mode():
    """default_queue_type is the only key the 3.10 schema cannot check, and it is
    rendered only in quorum mode (3.13.3+/4.x images)."""
    text = configmap_file(render(), f"{STS}-config", "rabbitmq.conf")
    assert not any(line.split("=")[0].strip() in NEWER_KEYS for line in text.splitlines())
