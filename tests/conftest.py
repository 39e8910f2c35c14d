"""Session fixtures for real components.

Kafka, in this order: ``CCPULSE_KAFKA_BOOTSTRAP`` when set; else testcontainers' Kafka when a
Docker engine answers; else the project's own launcher (deploy/local/kafka.py) on a free port,
started once per test session and stopped at the end, even when tests fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.debian_tools import debian_tool

REPO = Path(__file__).resolve().parent.parent
TESTCONTAINERS_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Apache Kafka 3.9, as the local launcher


def docker_answers() -> bool:
    """True when a Docker engine answers a ping (not merely when the client is installed)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    explicit = os.environ.get("CCPULSE_KAFKA_BOOTSTRAP", "").strip()
    if explicit:
        yield explicit
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(TESTCONTAINERS_KAFKA_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from pipeline.local_broker import launcher

    kafka = launcher()
    data_dir = tmp_path_factory.mktemp("kafka-broker")
    broker = kafka.start(data_dir, port=0)
    try:
        yield broker.bootstrap
    finally:
        kafka.stop(data_dir)


@pytest.fixture(scope="session")
def kafka_launcher():  # type: ignore[no-untyped-def]
    from pipeline.local_broker import launcher

    return launcher()


@pytest.fixture
def own_broker(kafka_launcher, tmp_path: Path) -> Iterator[tuple[Path, str]]:  # type: ignore[no-untyped-def]
    """A broker of the test's own, for tests that stop or kill it (no other test loses its broker):
    its data dir (to stop, kill or start it again with ``kafka_launcher``) and its address."""
    data_dir = tmp_path / "broker"
    broker = kafka_launcher.start(data_dir, port=0)
    try:
        yield data_dir, broker.bootstrap
    finally:
        kafka_launcher.stop(data_dir)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, a 1080p screen (skips with a reason when it is not installed)."""
    chromium = debian_tool("chromium", "chromium")
    driver_path = debian_tool("chromedriver", "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--window-size=1920,1080"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        yield driver
    finally:
        driver.quit()
