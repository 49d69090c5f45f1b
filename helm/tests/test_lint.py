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


def test_chart_packages_and_renders_from_the_archive(tmp_path):
    from conftest import CHART, NAMESPACE, RELEASE, helm

    archive = helm.package(CHART, destination=tmp_path)
    assert archive.endswith("warren-0.1.0.tgz")
    data = open(archive, "rb").read()
    with helm.Chart.load_archive(data) as c:
        assert c.name == "warren"
        assert c.schema is not None and c.schema["additionalProperties"] is False
        manifests = c.render(name=RELEASE, namespace=NAMESPACE)
    assert "warren/templates/broker-statefulset.yaml" in manifests
    with helm.Chart.load(CHART) as c:
        assert any(f["name"] == "README.md" for f in c.files)
