"""The Python half of warren's test kit: what the compose, Ansible and Helm
suites all need (the Rust half, for the real_ tests, is the testkit/ crate).

Each suite's conftest.py puts scripts/lib on sys.path and imports from here, so
a command that fails, a wait that times out and a build that is missing read
the same in every suite.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent.parent


def run(cmd, check=True, timeout=600, **kw):
    """Run argv `cmd` with its output captured as text; with `check`, a non-zero
    exit fails the test with the command and the tail of what it printed.

    `kw` goes to subprocess.run (`env`, `cwd`, `stderr=subprocess.STDOUT` for
    one stream in the order a terminal shows it)."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(cmd, text=True, timeout=timeout, check=False, **kw)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{(p.stderr or '')[-4000:]}"
        )
    return p


def poll(what, fn, timeout, interval=1.0):
    """Call fn() until it returns a truthy value, which is returned; fail naming
    `what` and the last value or error after `timeout` seconds.

    For conditions nothing announces (a cluster forming, a VIP moving): an
    exception from fn() counts as "not yet", since the thing polled is often
    not up enough to answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def require_tool(name):
    """Fail (not skip) when a tool on PATH is missing: a suite that cannot run
    must not pass."""
    if shutil.which(name) is None:
        pytest.fail(f"{name} is not installed (scripts/install-deps installs it)")


def binary(env_name, name):
    """A built warren binary: $env_name (scripts/test sets it) or else
    target/{release,debug}/name. Missing, it fails the test with how to build it."""
    given = os.environ.get(env_name)
    if given:
        if os.access(given, os.X_OK):
            return given
        pytest.fail(f"{env_name}={given} is not an executable file: build {name} "
                    f"(cargo build -p {name}) or point {env_name} at it")
    for c in (REPO_DIR / "target" / p / name for p in ("release", "debug")):
        if os.access(c, os.X_OK):
            return str(c)
    pytest.fail(f"{name} not found ({env_name} or target/{{release,debug}}/{name}): build it "
                f"with cargo build --workspace --bins (scripts/test does) or set {env_name}")
