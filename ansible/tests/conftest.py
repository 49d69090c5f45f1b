"""Shared helpers for the ansible tests (pytest, run from the repo root or anywhere)."""

import os
import pathlib
import subprocess

import pytest

ANSIBLE_DIR = pathlib.Path(__file__).resolve().parent.parent
REPO_DIR = ANSIBLE_DIR.parent


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


def run_playbook(playbook, inventory, *args, timeout=1800, extra_env=None):
    """Run ansible-playbook; return CompletedProcess with .output (stdout+stderr)."""
    cmd = ["ansible-playbook", "-i", str(inventory), str(ANSIBLE_DIR / playbook), *args]
    proc = subprocess.run(
        cmd,
        cwd=ANSIBLE_DIR,
        env=ansible_env(extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    proc.output = proc.stdout
    return proc


def require_tool(name):
    from shutil import which

    if which(name) is None:
        pytest.fail(f"{name} is not installed (scripts/install-deps installs it)")
