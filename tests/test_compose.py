"""docker-compose.yml describes the whole platform: every server with its port and a
healthcheck, and the three services built from the one Dockerfile with the LINKHOP_*
connection variables pointing at the containers. Needs no Docker engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"

EXPECTED_PORTS = {
    "postgres": 15432,
    "redis": 16379,
    "kafka": 19092,
    "redirect": 18080,
    "management": 18081,
    "stats": 18082,
}
APP_SERVICES = ("redirect", "management", "stats")
CONNECTION_VARS = ("LINKHOP_DATABASE_URL", "LINKHOP_REDIS_URL", "LINKHOP_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    result = document["services"]
    assert isinstance(result, dict)
    return result


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _host_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["published"]))
        else:  # "[ip:]host:container[/proto]"
            ports.add(int(str(entry).split("/")[0].split(":")[-2]))
    return ports


@pytest.mark.parametrize(("name", "port"), sorted(EXPECTED_PORTS.items()))
def test_service_has_port_and_healthcheck(services: dict[str, Any], name: str, port: int) -> None:
    assert name in services, f"service {name} missing from docker-compose.yml"
    service = services[name]
    assert port in _host_ports(service), f"{name} does not publish {port}"
    healthcheck = service.get("healthcheck")
    assert healthcheck and healthcheck.get("test"), f"{name} has no healthcheck"
    assert not healthcheck.get("disable", False)


def test_app_services_share_one_dockerfile_and_the_connection_vars(
    services: dict[str, Any],
) -> None:
    dockerfiles = set()
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert isinstance(build, dict)
        dockerfile = (ROOT / build.get("context", ".") / build["dockerfile"]).resolve()
        dockerfiles.add(dockerfile)
        env = _environment(services[name])
        for var in CONNECTION_VARS:
            assert env.get(var), f"{name} lacks {var}"
        assert env["LINKHOP_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:" in env["LINKHOP_DATABASE_URL"]
        assert env["LINKHOP_REDIS_URL"].startswith("redis://redis:")
        assert env["LINKHOP_KAFKA_BOOTSTRAP"].startswith("kafka:")
        prefix = f"LINKHOP_{name.upper()}_"
        assert env[f"{prefix}HOST"] == "0.0.0.0"
        assert int(env[f"{prefix}PORT"]) == EXPECTED_PORTS[name]
        command = services[name]["command"]
        assert command[-1] == f"services.{name}" or f"services.{name}" in " ".join(command)
    assert dockerfiles == {(ROOT / "deploy" / "docker" / "Dockerfile").resolve()}
    assert (ROOT / "deploy" / "docker" / "Dockerfile").is_file()


def test_apps_wait_for_healthy_dependencies(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert isinstance(depends, dict)
        for dependency in ("postgres", "redis", "kafka"):
            assert depends[dependency]["condition"] == "service_healthy", (name, dependency)
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_migrate_is_one_shot_from_the_same_image(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["linkhop", "migrate"]
    assert migrate["build"] == services["redirect"]["build"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert str(migrate.get("restart", "no")) == "no"
