"""`helm lint --strict` with the real Helm engine, for defaults and every scenario."""

import pytest

from conftest import SCENARIOS, lint


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_lint_strict_passes(name):
    report = lint(SCENARIOS[name] or None)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == [], report
    # strict: no warnings either (severity 2 = warning, 3 = error)
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], serious


def test_lint_reports_schema_errors():
    report = lint({"mode": "primary-backup"})
    assert report["errors"], "lint must fail on an unknown mode"
    assert any("value must be one of 'mirrored', 'quorum'" in e for e in report["errors"])
