from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Secret, Settings, SettingsError


def test_defaults_are_the_documented_local_ones() -> None:
    settings = Settings.from_env({}, env_file=None)
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert (settings.topic, settings.dlq_topic) == ("cc.events", "cc.events.dlq")
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 6066)
    assert (settings.clock, settings.timezone) == ("wall", "UTC")
    assert settings.data_dir == Path(".ccpulse")
    assert settings.query_seconds == 120.0
    assert settings.effective_clickhouse_url.reveal().startswith("chdb://")
    assert settings.effective_clickhouse_url.reveal().endswith("/.ccpulse/clickhouse")


def test_environment_overrides_and_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CCPULSE_TOPIC=from.file\nCCPULSE_HTTP_PORT=7000\n")
    settings = Settings.from_env({"CCPULSE_HTTP_PORT": "7100", "CCPULSE_CLOCK": "event"}, env_file=env_file)
    assert settings.topic == "from.file"  # the file fills in
    assert settings.http_port == 7100  # the real environment wins
    assert settings.clock == "event"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CCPULSE_HTTP_PORT", "web", "whole number"),
        ("CCPULSE_HTTP_PORT", "70000", "0..65535"),
        ("CCPULSE_CLOCK", "lunar", "'wall'"),
        ("CCPULSE_TIMEZONE", "Mars/Olympus", "IANA"),
        ("CCPULSE_TARGETS", "/no/such/targets.yaml", "no such file"),
        ("CCPULSE_KAFKA_SECURITY_PROTOCOL", "carrier-pigeon", "SASL_SSL"),
        ("CCPULSE_LIVE_BATCH_SECONDS", "-0.5", "0.0..60.0"),
        ("CCPULSE_QUERY_SECONDS", "0", "1.0..86400.0"),
    ],
)
def test_a_wrong_value_names_the_variable_and_what_it_takes(variable: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as problem:
        Settings.from_env({variable: value}, env_file=None)
    assert variable in str(problem.value) and says in str(problem.value)


def test_secrets_never_print() -> None:
    settings = Settings.from_env(
        {
            "CCPULSE_CLICKHOUSE_URL": "https://analyst:hunter2@ch.example:8443/ccpulse",
            "CCPULSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CCPULSE_KAFKA_SASL_USERNAME": "svc",
            "CCPULSE_KAFKA_SASL_PASSWORD": "s3cr3t-pass",
            "CCPULSE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        },
        env_file=None,
    )
    shown = repr(settings) + str(settings)
    assert "hunter2" not in shown and "s3cr3t-pass" not in shown
    assert settings.kafka_security.kafka_python_options()["sasl_plain_password"] == "s3cr3t-pass"
    assert str(Secret("x")) == "***"


def test_only_the_embedded_engine_counts_as_a_single_writer() -> None:
    """metrics_minute comes from the board's sums only where one worker writes ClickHouse."""
    assert Settings.from_env({}, env_file=None).single_writer  # the embedded engine, by default
    assert Settings.from_env({"CCPULSE_CLICKHOUSE_URL": "chdb:///var/lib/ccpulse/ch"}, env_file=None).single_writer
    server = Settings.from_env({"CCPULSE_CLICKHOUSE_URL": "https://u:p@ch.example:8443/cc"}, env_file=None)
    assert not server.single_writer


def test_the_twilio_auth_token_comes_from_the_environment_or_a_file_and_never_prints(tmp_path: Path) -> None:
    token = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
    from_env = Settings.from_env({"CCPULSE_TWILIO_AUTH_TOKEN": token}, env_file=None)
    token_file = tmp_path / "twilio-token"
    token_file.write_text(token + "\n")
    from_file = Settings.from_env({"CCPULSE_TWILIO_AUTH_TOKEN_FILE": str(token_file)}, env_file=None)
    for settings in (from_env, from_file):
        assert settings.twilio_auth_token is not None and settings.twilio_auth_token.reveal() == token
        assert token not in repr(settings) and token not in str(settings)
    assert Settings.from_env({}, env_file=None).twilio_auth_token is None
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env({"CCPULSE_TWILIO_AUTH_TOKEN": token, "CCPULSE_TWILIO_AUTH_TOKEN_FILE": str(token_file)},
                          env_file=None)  # fmt: skip
    with pytest.raises(SettingsError, match="CCPULSE_TWILIO_AUTH_TOKEN_FILE"):
        Settings.from_env({"CCPULSE_TWILIO_AUTH_TOKEN_FILE": str(tmp_path / "missing")}, env_file=None)
