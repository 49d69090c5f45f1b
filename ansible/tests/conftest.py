"""Shared helpers for the ansible tests (pytest, run from the repo root or anywhere)."""

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

ANSIBLE_DIR = pathlib.Path(__file__).resolve().parent.parent
REPO_DIR = ANSIBLE_DIR.parent
# The suites' shared helpers (run, poll, require_tool, binary): scripts/lib/warren_testkit.py.
sys.path.insert(0, str(REPO_DIR / "scripts" / "lib"))


def ansible_env(extra=None):
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_DIR / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "False"
    env.setdefault("ANSIBLE_LOCAL_TEMP", "/tmp/wans-ansible-local")
    if extra:
        env.update(extra)
    return env


def run_playbook(playbook, inventory, *args, timeout=1800, extra_env=None, log=None):
    """Run ansible-playbook; return CompletedProcess with .output (stdout+stderr)."""
    cmd = ["ansible-playbook", "-i", str(inventory), str(ANSIBLE_DIR / playbook), *args]
    return run_logged(cmd, timeout=timeout, extra_env=extra_env, log=log)


def run_logged(cmd, timeout=1800, extra_env=None, log=None):
    """Run cmd (argv, or a string for bash) in ansible/ with ansible_env; return
    CompletedProcess with .output (stdout+stderr).

    The output goes to `log` (a path) as it is produced, so a run that hangs and
    is killed at `timeout` still leaves its evidence; the test then fails with
    the tail of it."""
    if isinstance(cmd, str):
        cmd = ["bash", "-euo", "pipefail", "-c", cmd]
    log = pathlib.Path(log) if log else pathlib.Path(tempfile.mkstemp(prefix="wans-playbook-", suffix=".log")[1])
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ANSIBLE_DIR, env=ansible_env(extra_env),
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            tail = log.read_text()[-6000:]
            pytest.fail(f"{cmd[-1]} did not finish within {timeout}s (whole output: {log}); last output:\n{tail}")
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout=log.read_text())
    done.output = done.stdout
    return done

