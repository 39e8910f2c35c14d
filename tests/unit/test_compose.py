"""docker-compose.yml cannot run here (no Docker engine), so its structure is checked instead:
every service present and wired with the same addresses, ports and variables as the defaults."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_every_component_is_a_service() -> None:
    assert {"kafka", "clickhouse", "worker", "prometheus", "alertmanager", "grafana"} <= set(SERVICES)


def test_worker_variables_are_all_understood_and_consistent() -> None:
    env = {k: str(v) for k, v in SERVICES["worker"]["environment"].items()}
    assert all(name.startswith("CCPULSE_") for name in env)
    resolved = {k: v.replace("${CLICKHOUSE_PASSWORD:-change-me}", "pw") for k, v in env.items()}
    settings = Settings.from_env(resolved, env_file=None)  # raises on anything it can't take
    defaults = Settings()
    assert (settings.topic, settings.dlq_topic, settings.http_port) == (
        defaults.topic,
        defaults.dlq_topic,
        6066,
    )
    assert settings.http_host == "0.0.0.0"  # reachable from Prometheus in another container
    assert f"127.0.0.1:{settings.http_port}:{settings.http_port}" in SERVICES["worker"]["ports"]

    host, port = settings.kafka_bootstrap.split(":")
    kafka_env = SERVICES["kafka"]["environment"]
    assert host == "kafka" and f"kafka:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert "localhost:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]  # ccpulse's default from the host

    url = settings.clickhouse_url.reveal()
    assert url.startswith("http://ccpulse:") and url.endswith("@clickhouse:8123/ccpulse")
    assert SERVICES["clickhouse"]["environment"]["CLICKHOUSE_DB"] == "ccpulse"
    assert set(SERVICES["worker"]["depends_on"]) == {"kafka", "clickhouse"}


def test_prometheus_scrapes_the_worker_and_alerts_to_alertmanager() -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert "worker:6066" in targets
    managers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert managers == ["alertmanager:9093"]
    assert any("9093:9093" in p for p in SERVICES["alertmanager"]["ports"])


def test_mounted_and_built_paths_exist() -> None:
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    assert (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").is_file()
    assert (REPO / "deploy/grafana/dashboards/ccpulse.json").is_file()


def test_dockerfile_copies_what_the_package_needs() -> None:
    dockerfile = (REPO / "deploy/Dockerfile").read_text()
    for path in ("pyproject.toml", "pipeline", "schemas", "deploy"):
        assert f"COPY {path}" in dockerfile and (REPO / path).exists()
    assert 'CMD ["ccpulse", "worker"]' in dockerfile
