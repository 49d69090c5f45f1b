"""values.schema.json covers every value in values.yaml and rejects unknown keys."""

import json

import yaml

from conftest import CHART

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def walk(values, schema, path, problems):
    if isinstance(values, dict):
        props = schema.get("properties")
        if props is None:
            # free-form maps (labels, annotations, nodeSelector) must still type their values
            if schema.get("additionalProperties") not in ({"type": "string"},):
                problems.append(f"{path or '/'}: map without typed additionalProperties")
            return
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path or '/'}: additionalProperties must be false")
        for key, sub in values.items():
            if key not in props:
                problems.append(f"{path}/{key}: not in schema")
                continue
            walk(sub, props[key], f"{path}/{key}", problems)
    elif isinstance(values, list):
        if schema.get("type") != "array" or "items" not in schema:
            problems.append(f"{path}: list without an items schema")


def test_every_value_is_in_the_schema():
    problems = []
    walk(VALUES, SCHEMA, "", problems)
    assert problems == []


def test_every_object_schema_is_closed():
    def visit(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, path
            for k, v in node.items():
                visit(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, f"{path}[{i}]")

    visit(SCHEMA, "")


def test_every_value_is_documented():
    """Each leaf in values.yaml has a schema description or a comment in values.yaml."""
    doc = (CHART.parent.parent / "docs" / "helm.md").read_text()

    def leaves(values, path):
        for k, v in values.items():
            p = f"{path}.{k}" if path else k
            if isinstance(v, dict) and v:
                yield from leaves(v, p)
            else:
                yield p

    missing = [p for p in leaves(VALUES, "") if f"`{p}`" not in doc]
    assert missing == [], f"values missing from the docs/helm.md values table: {missing}"
