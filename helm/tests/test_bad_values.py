"""Bad values stop `helm lint` / `helm template` / `helm install` with a clear reason."""

import shutil

import pytest

from conftest import CHART, lint, render_error


# (values, message the user sees on render, message lint reports or None)
SCHEMA_CASES = {
    "replicas-2": ({"broker": {"replicas": 2}}, "at '/broker/replicas': value must be one of 1, 3, 5, 7, 9, 11, 13, 15"),
    "replicas-4": ({"broker": {"replicas": 4}}, "at '/broker/replicas': value must be one of 1, 3, 5"),
    "replicas-0": ({"broker": {"replicas": 0}}, "at '/broker/replicas': value must be one of"),
    "unknown-mode": ({"mode": "primary-backup"}, "at '/mode': value must be one of 'mirrored', 'quorum'"),
    "empty-broker-tag": ({"broker": {"image": {"tag": ""}}}, "at '/broker/image/tag': minLength: got 0, want 1"),
    "null-broker-tag": ({"broker": {"image": {"tag": None}}}, "at '/broker/image': missing property 'tag'"),
    "empty-lb-tag": ({"lb": {"image": {"tag": ""}}}, "at '/lb/image/tag': minLength: got 0, want 1"),
    "empty-drill-tag": ({"tests": {"image": {"tag": ""}}}, "at '/tests/image/tag': minLength"),
    "typo-key": ({"broker": {"replica": 3}}, "additional properties 'replica' not allowed"),
    "bad-service-type": ({"lb": {"service": {"type": "NodePort"}}}, "at '/lb/service/type': value must be one of 'ClusterIP', 'LoadBalancer'"),
    "bad-vip": ({"vip": {"enabled": True, "virtualIPs": ["not-an-ip"]}}, "at '/vip/virtualIPs/0'"),
    "khepri-not-boolean": ({"broker": {"khepri": {"enabled": "yes"}}}, "at '/broker/khepri/enabled'"),
    "khepri-typo": ({"broker": {"khepri": {"enable": True}}}, "additional properties 'enable' not allowed"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_schema_rejects_on_render_and_lint(case):
    values, message = SCHEMA_CASES[case]
    assert message in render_error(values)
    report = lint(values)
    assert any(message in e for e in report["errors"]), report["errors"]


# Rules the templates enforce with `fail` (render / template / install).
TEMPLATE_CASES = {
    "mirrored-with-4.0": (
        {"mode": "mirrored", "broker": {"image": {"tag": "4.0.5"}}},
        'mode=mirrored needs a RabbitMQ 3.13 broker image, but broker.image.tag is "4.0.5": classic queue mirroring was removed in RabbitMQ 4.0',
    ),
    "mirrored-with-v4.1": (
        {"broker": {"image": {"tag": "v4.1.0-management"}}},
        "mode=mirrored needs a RabbitMQ 3.13 broker image",
    ),
    "unknown-line-4.2": (
        {"mode": "quorum", "broker": {"image": {"tag": "4.2.0"}}},
        'broker.image.tag "4.2.0" does not name a RabbitMQ line this chart supports (supported: 3.13, 4.0, 4.1; '
        "the tag must start with MAJOR.MINOR, e.g. 4.0.5 or 4.0-management)",
    ),
    "unknown-line-3.12": (
        {"broker": {"image": {"tag": "3.12.14-management"}}},
        'broker.image.tag "3.12.14-management" does not name a RabbitMQ line this chart supports (supported: 3.13, 4.0, 4.1',
    ),
    "tag-without-version": (
        {"mode": "quorum", "broker": {"image": {"tag": "latest"}}},
        'broker.image.tag "latest" does not name a RabbitMQ line this chart supports',
    ),
    "khepri-on-3.13": (
        {"mode": "quorum", "broker": {"image": {"tag": "3.13.7"}, "khepri": {"enabled": True}}},
        'broker.khepri.enabled=true needs a RabbitMQ 4.x broker image, but broker.image.tag is "3.13.7": '
        "Khepri on 3.13 is experimental, unsupported, and blocks the upgrade to 4.x",
    ),
    "vip-without-address": (
        {"vip": {"enabled": True}},
        "vip.enabled=true needs at least one address in vip.virtualIPs",
    ),
    "vip-without-lb": (
        {"vip": {"enabled": True, "virtualIPs": ["192.0.2.10/24"]}, "lb": {"enabled": False}},
        "vip.enabled=true needs lb.enabled=true",
    ),
    "prestop-longer-than-grace": (
        {"broker": {"preStopTimeoutSeconds": 4000, "terminationGracePeriodSeconds": 3600}},
        "broker.preStopTimeoutSeconds (4000) must be lower than broker.terminationGracePeriodSeconds (3600)",
    ),
}


@pytest.mark.parametrize("case", sorted(TEMPLATE_CASES))
def test_templates_fail_with_reason(case):
    values, message = TEMPLATE_CASES[case]
    assert message in render_error(values)


@pytest.fixture(scope="module")
def chart_without_schema(tmp_path_factory):
    """The same chart without values.schema.json (what --skip-schema-validation does)."""
    chart = tmp_path_factory.mktemp("noschema") / "warren"
    shutil.copytree(CHART, chart)
    (chart / "values.schema.json").unlink()
    return chart


@pytest.mark.parametrize(
    "values,message",
    [
        ({"broker": {"replicas": 2}}, "broker.replicas must be an odd number >= 1 (got 2)"),
        ({"broker": {"replicas": 6}}, "broker.replicas must be an odd number >= 1 (got 6)"),
        ({"mode": "sharded"}, 'mode must be "mirrored" or "quorum" (got "sharded")'),
        ({"broker": {"image": {"tag": ""}}}, "broker.image.tag is empty: set an explicit image tag"),
        ({"lb": {"image": {"tag": ""}}}, "lb.image.tag is empty"),
        ({"mode": "quorum", "broker": {"image": {"tag": "4.2.0"}}},
         'broker.image.tag "4.2.0" does not name a RabbitMQ line this chart supports'),
        ({"broker": {"khepri": {"enabled": True}}}, "broker.khepri.enabled=true needs a RabbitMQ 4.x broker image"),
        ({"mode": "mirrored", "broker": {"image": {"tag": "4.0.5"}}}, "mode=mirrored needs a RabbitMQ 3.13 broker image"),
    ],
)
def test_templates_check_even_without_the_schema(chart_without_schema, values, message):
    assert message in render_error(values, chart=chart_without_schema)


def test_quorum_with_4x_is_fine():
    from conftest import render

    r = render({"mode": "quorum", "broker": {"image": {"tag": "4.1.2"}}})
    assert r.has("StatefulSet", "warren-rabbitmq")
