"""The Erlang cookie, admin password and lb admin token: generated once, never regenerated on upgrade."""

import base64
import re
import shutil

from conftest import CHART, SECRET, STS, container, render


def template_source(name: str) -> str:
    return (CHART / "templates" / name).read_text()


def test_generated_secret_is_kept_and_complete():
    r = render()
    s = r.get("Secret", SECRET)
    assert s["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    cookie = base64.b64decode(s["data"]["erlang-cookie"]).decode()
    password = base64.b64decode(s["data"]["admin-password"]).decode()
    token = base64.b64decode(s["data"]["lb-admin-token"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{64}", cookie)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", token) and token != password


def test_template_reuses_the_live_secret_via_lookup():
    src = template_source("secret.yaml")
    assert re.search(r'lookup "v1" "Secret" \.Release\.Namespace \$name', src)
    assert "randAlphaNum" in src


def test_fresh_renders_would_differ_without_lookup():
    """Offline, lookup returns nothing, so two installs get different random values:
    this is exactly why the lookup branch must exist for upgrades."""
    from conftest import helm, NAMESPACE, RELEASE

    with helm.Chart.load(CHART) as c:
        a = c.render(name=RELEASE, namespace=NAMESPACE)["warren/templates/secret.yaml"]
        b = c.render(name=RELEASE, namespace=NAMESPACE)["warren/templates/secret.yaml"]
    assert a != b


def test_upgrade_keeps_existing_secret_data(tmp_path):
    """Simulate `helm upgrade` against a live Secret: replace the lookup call in a copy
    of the chart with the object the API server would return, render, and check the
    rendered Secret carries the live data unchanged."""
    chart = tmp_path / "warren"
    shutil.copytree(CHART, chart)
    path = chart / "templates" / "secret.yaml"
    src = path.read_text()
    live_cookie = base64.b64encode(b"LIVECOOKIE" * 5).decode()
    live_pw = base64.b64encode(b"live-password").decode()
    stub = f'(dict "data" (dict "erlang-cookie" "{live_cookie}" "admin-password" "{live_pw}"))'
    patched, n = re.subn(r'lookup "v1" "Secret" \.Release\.Namespace \$name', stub, src)
    assert n == 1
    path.write_text(patched)
    r = render(chart=chart, is_upgrade=True)
    s = r.get("Secret", SECRET)
    assert s["data"]["erlang-cookie"] == live_cookie
    assert s["data"]["admin-password"] == live_pw
    # A Secret from before the lb admin token existed gets one, generated once.
    assert re.fullmatch(r"[A-Za-z0-9]{32}", base64.b64decode(s["data"]["lb-admin-token"]).decode())


def test_upgrade_keeps_a_live_lb_admin_token(tmp_path):
    chart = tmp_path / "warren"
    shutil.copytree(CHART, chart)
    path = chart / "templates" / "secret.yaml"
    live = {k: base64.b64encode(v.encode()).decode() for k, v in
            {"erlang-cookie": "C" * 64, "admin-password": "p" * 32, "lb-admin-token": "live-token-" * 3}.items()}
    stub = "(dict \"data\" (dict " + " ".join(f'"{k}" "{v}"' for k, v in live.items()) + "))"
    patched, n = re.subn(r'lookup "v1" "Secret" \.Release\.Namespace \$name', stub, path.read_text())
    assert n == 1
    path.write_text(patched)
    assert render(chart=chart, is_upgrade=True).get("Secret", SECRET)["data"] == live


def test_existing_secret_is_used_and_not_created():
    r = render({"broker": {"existingSecret": "my-rabbit-secret"}})
    assert not r.all("Secret")
    sts = r.get("StatefulSet", STS)
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert vols["secret"]["secret"]["secretName"] == "my-rabbit-secret"
    keys = {i["key"] for i in vols["secret"]["secret"]["items"]}
    assert keys == {"erlang-cookie", "admin-password"}
    lb = r.get("Deployment", "warren-lb")
    lb_vols = {v["name"]: v for v in lb["spec"]["template"]["spec"]["volumes"]}
    assert lb_vols["secrets"]["secret"]["secretName"] == "my-rabbit-secret"
    test_pod = r.get("Pod", "warren-drill-smoke")
    assert test_pod["spec"]["volumes"][0]["secret"]["secretName"] == "my-rabbit-secret"


def test_cookie_is_copied_by_init_container_not_env():
    r = render()
    pod = r.get("StatefulSet", STS)["spec"]["template"]["spec"]
    main = container(pod, "rabbitmq")
    assert all("COOKIE" not in e["name"] for e in main["env"])
    assert all(m["name"] != "secret" for m in main["volumeMounts"]), "the secret stays in the init container"
    init = container(pod, "setup", init=True)
    assert {m["name"] for m in init["volumeMounts"]} >= {"secret", "data", "rabbitmq-etc"}
