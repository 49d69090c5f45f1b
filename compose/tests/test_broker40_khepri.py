"""WARREN_KHEPRI=true on the 4.0 line, a whole compose stack: khepri_db is
enabled on every node once the three have formed, the health check still
counts them, and a crash drill through the VIP passes with nothing lost. Its
own module, so that its stack never runs beside test_broker40's."""

import pytest

from conftest import NETS, Stack, stack_up
from warren_testkit import poll
from test_stack import _check_reports, _verdict


@pytest.fixture(scope="module")
def stack40k(images40, secrets_dir):
    yield from stack_up(Stack("warrentest40k", "quorum", NETS["quorum-4.0-khepri"], secrets_dir,
                              broker="4.0", khepri=True))


def test_40_khepri_stack_migrates_once_formed_and_passes_crash_drill(stack40k):
    def khepri_everywhere():
        for i in (1, 2, 3):
            ff = {f["name"]: f["state"] for f in stack40k.mgmt("/feature-flags", node=i)}
            if ff.get("khepri_db") != "enabled":
                return None
        return True
    poll("khepri_db enabled on all three nodes", khepri_everywhere, 180, interval=2)

    # ... by warren-broker-after-formation (its CLI call returns once the
    # migration has finished, which may be after the flag shows as enabled)
    def after_formation_lines():
        logs = stack40k.dc("logs", "--no-color", "broker1", "broker2", "broker3").stdout
        return [line for line in logs.splitlines() if "after formation:" in line]
    lines = poll("an after-formation log line for khepri_db",
                 lambda: [x for x in after_formation_lines() if "khepri_db" in x], 180, interval=2)
    print("\n".join(after_formation_lines()))
    assert any("khepri_db enabled (metadata store: Khepri)" in x for x in lines), lines
    # the health check still counts three running nodes on Khepri
    stack40k.wait_healthy(("broker1", "broker2", "broker3"), timeout=120)
    p, report, html = stack40k.drill("crash")
    out = p.stdout[-4000:] + p.stderr[-4000:]
    assert report is not None, f"no drill report; exit {p.returncode}\n{out}"
    _check_reports(report, html, "crash")
    v = _verdict(report)
    assert str(v.get("verdict", "")).lower() == "pass", f"{v}\n{out}"
    assert v.get("lost") == 0, f"{v}\n{out}"
    assert p.returncode == 0, out
    stack40k.wait_healthy(("broker1", "broker2", "broker3"), timeout=240)
    assert all(n["running"] for n in stack40k.mgmt("/nodes"))


def test_40_khepri_down_leaves_nothing_behind(stack40k):
    p = stack40k.down()
    assert p.returncode == 0, p.stderr
    assert stack40k.leftovers() == {}
