"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine), so their structure is
checked: every service runs a real CLI command, every variable it sets is read by the settings
object (or by that service's own shell command), ports and health checks agree."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from facestream.cli import main
from infra.settings import Settings, env_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _setting_vars() -> set[str]:
    # Compose may set either spelling of an aliased variable.
    return {v for name in Settings.model_fields for v in env_names(name) + [f"FACESTREAM_{name.upper()}"]}


def _cli_has(words: list[str]) -> bool:
    cmd: click.Command = main
    for w in words:
        if w.startswith("-") or not isinstance(cmd, click.Group):
            break
        if w not in cmd.commands:
            return False
        cmd = cmd.commands[w]
    return True


def _command_text(svc: dict) -> str:
    c = svc.get("command", [])
    return " ".join(c) if isinstance(c, list) else str(c)


def test_every_service_runs_an_existing_cli_command(compose):
    ours = {k: v for k, v in compose["services"].items() if "build" in v}
    assert {"setup", "worker", "sink", "gateway", "demo-producer"} <= set(ours)
    for name, svc in ours.items():
        if "entrypoint" in svc:  # a shell script: check each facestream invocation in it
            calls = re.findall(r"facestream ((?:[a-z-]+ ?)+)", _command_text(svc))
            assert calls, name
            for call in calls:
                assert _cli_has(call.split()), f"{name}: `facestream {call}` is not a CLI command"
        else:
            assert _cli_has(svc["command"]), f"{name}: {svc['command']} is not a CLI command"


def test_every_variable_is_a_setting_or_used_by_the_service_itself(compose):
    known = _setting_vars()
    for name, svc in compose["services"].items():
        if "build" not in svc:
            continue
        text = _command_text(svc)
        for var in svc.get("environment", {}):
            assert var in known or f"${var}" in text or f"${{{var}}}" in text or f"$${var}" in text, (
                f"{name} sets {var}, which the settings object does not read")


def test_ports_and_health_checks_agree(compose):
    s = compose["services"]
    gw = s["gateway"]
    port = gw["environment"]["FACESTREAM_GATEWAY_PORT"]
    assert any(p.endswith(f":{port}") for p in gw["ports"])
    assert f":{port}/healthz" in " ".join(gw["healthcheck"]["test"])
    for svc, var in (("worker", "FACESTREAM_WORKER_METRICS_PORT"), ("sink", "FACESTREAM_SINK_METRICS_PORT")):
        p = s[svc]["environment"][var]
        assert p in s[svc]["expose"] and f":{p}/metrics" in " ".join(s[svc]["healthcheck"]["test"])
    # The gateway's metrics stay off its published port.
    metrics_port = gw["environment"]["FACESTREAM_GATEWAY_METRICS_PORT"]
    assert metrics_port in gw["expose"] and not any(p.endswith(f":{metrics_port}") for p in gw["ports"])
    assert all("healthcheck" in s[k] for k in ("kafka", "postgres", "worker", "sink", "gateway"))
    assert "controller" in s["kafka"]["environment"]["KAFKA_PROCESS_ROLES"], "Kafka in KRaft mode"
    assert "ports" not in s["worker"], "workers publish no fixed host port, so --scale worker=3 works"


def test_dockerfile_installs_the_project_and_runs_the_cli():
    text = (ROOT / "Dockerfile").read_text()
    for pkg in ("facestream", "producers", "processors", "sinks", "schemas"):
        assert f"COPY {pkg} {pkg}" in text
    assert 'ENTRYPOINT ["facestream"]' in text and "mediapipe==" in text


def test_every_setting_is_documented():
    doc = (ROOT / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        var = env_names(name)[0]
        assert f"`{var}`" in doc, f"{var} is missing from docs/settings.md"
