"""compose/drill-table, the final table of scripts/demo: the drill's JSON
keys land in the right columns, and missing, odd or unreadable reports
print "-" (with a note) instead of crashing the demo's summary."""

import json
import os

from conftest import ROOT
from warren_testkit import run

TABLE = os.path.join(ROOT, "compose", "drill-table")

# the shape warren-drill writes (drill/src/drill/mod.rs DrillReport), trimmed
CRASH = {
    "fault": "crash",
    "lb_switch": "1234 ms after the fault: warren-lb routes to broker2 (was broker1; DOWN: broker1)",
    "vip_move": "no lb-crash fault",
    "accounting": {"verdict": "pass", "confirmed": 4321, "lost": 0, "duplicated": 7,
                   "publisher_outage_ms": 1875.4},
}
LB_CRASH = {
    "fault": "lb-crash",
    "lb_switch": "no switch seen (the lb kept routing to the same server)",
    "vip_move": "412 ms after the lb host was killed: lb2 holds 10.230.0.100",
    "accounting": {"verdict": "fail", "confirmed": 3000, "lost": 2, "duplicated": 0,
                   "publisher_outage_ms": 950},
}


def table(tmp_path, *reports):
    """Run the table over (file name, report object or raw text) pairs."""
    paths = [str(_write(tmp_path, name, body if isinstance(body, str) else json.dumps(body)))
             for name, body in reports]
    return run([TABLE, *paths], check=False)


def cells(line):
    return [c.strip() for c in line.strip().split("  ") if c.strip()]


def test_columns_from_the_report_keys(tmp_path):
    p = table(tmp_path, ("crash.json", CRASH), ("lb-crash.json", LB_CRASH))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert cells(lines[0]) == ["fault", "verdict", "confirmed", "lost", "duplicated",
                               "publisher outage", "lb switch", "VIP move"]
    assert set(lines[1].strip()) <= {"-", " "}
    assert cells(lines[2]) == ["crash", "pass", "4321", "0", "7", "1875 ms", "1234 ms",
                               "no lb-crash fault"]
    assert cells(lines[3]) == ["lb-crash", "fail", "3000", "2", "0", "950 ms",
                               "no switch seen", "412 ms"]


def test_unknown_verdict_printed_as_the_report_says(tmp_path):
    r = dict(CRASH, accounting=dict(CRASH["accounting"], verdict="invalid"))
    p = table(tmp_path, ("crash.json", r))
    assert p.returncode == 0, p.stderr
    assert cells(p.stdout.splitlines()[2])[:2] == ["crash", "invalid"]


def test_missing_and_odd_values_print_a_dash(tmp_path):
    r = {"fault": "freeze", "lb_switch": None,
         "accounting": {"verdict": "pass", "confirmed": "many", "lost": True,
                        "publisher_outage_ms": "soon"}}
    p = table(tmp_path, ("freeze.json", r))
    assert p.returncode == 0, p.stderr
    assert cells(p.stdout.splitlines()[2]) == ["freeze", "pass"] + ["-"] * 6


def test_unreadable_reports_get_a_row_and_a_note(tmp_path):
    absent = str(tmp_path / "crash.json")
    p = run([TABLE, absent, str(_write(tmp_path, "lb-crash.json", "{oops")),
             str(_write(tmp_path, "none.json", "[1, 2]"))], check=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert cells(lines[2]) == ["crash"] + ["-"] * 7
    assert cells(lines[3]) == ["lb-crash"] + ["-"] * 7
    assert cells(lines[4]) == ["none"] + ["-"] * 7
    notes = "\n".join(lines[5:])
    assert f"crash: report {tmp_path / 'crash.json'}: cannot read it: No such file" in notes
    assert f"lb-crash: report {tmp_path / 'lb-crash.json'}: not JSON:" in notes
    assert "none: report" in notes and "expected a JSON object (a warren-drill report), got list" in notes


def test_no_arguments_is_a_usage_error():
    p = run([TABLE], check=False)
    assert p.returncode == 2
    assert "usage: compose/drill-table REPORT.json" in p.stderr


def _write(d, name, text):
    p = d / name
    p.write_text(text)
    return p
