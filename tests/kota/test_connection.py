"""The shared settings (kota.settings), the one backoff (kota.backoff), JSON logs, the service
command skeleton (kota.service_cli), the simulator over TLS and ingest's data lag."""

from __future__ import annotations

import io
import json
import logging
import random
import ssl
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from kota_testing import publish, wait_until

from devstack.localstack import LocalService, start_mosquitto
from ingest.settings import IngestSettings
from kota.backoff import Backoff
from kota.config import ConfigError, load_settings
from kota.logs import JsonFormatter
from kota.settings import LoggingSettings, MqttConnection
from simulators.publisher import MqttPublisher, PublishError
from simulators.settings import MqttPublishSettings, SimulateSettings


@pytest.fixture(autouse=True)
def _no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KOTA_CONFIG", raising=False)


def _problems(model: type, section: str, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(model, section, None, environ=environ)
    return caught.value.problems


# -- the models ------------------------------------------------------------------------------
def test_services_share_one_connection_and_one_logging_model() -> None:
    assert issubclass(IngestSettings.model_fields["mqtt"].annotation, MqttConnection)
    assert issubclass(SimulateSettings.model_fields["mqtt"].annotation, MqttConnection)
    from api.settings import ApiSettings
    from indicators.settings import IndicatorSettings

    for model in (IngestSettings, ApiSettings, IndicatorSettings):
        assert issubclass(model, LoggingSettings)
    # Each keeps its own client id default.
    assert IngestSettings().mqtt.client_id == "kota-ingest"
    assert SimulateSettings().mqtt.client_id == "kota-simulate"


@pytest.mark.parametrize("section,model", [("ingest", IngestSettings),
                                           ("simulate", SimulateSettings)])
def test_validation_errors_name_the_setting(section: str, model: type) -> None:
    prefix = f"KOTA_{section.upper()}__MQTT__"
    problems = _problems(model, section, {prefix + "TLS": "true", prefix + "CERT_FILE": "c.pem"})
    assert len(problems) == 1 and f"{section}.mqtt.key_file:" in problems[0], problems
    assert "cert_file and key_file go together" in problems[0]
    problems = _problems(model, section, {prefix + "PASSWORD": "s3cret",
                                          prefix + "PASSWORD_FILE": "pw.txt"})
    assert f"{section}.mqtt.password_file:" in problems[0] and "s3cret" not in problems[0]
    problems = _problems(model, section, {prefix + "PORT": "70000"})
    assert f"{prefix}PORT='70000': {section}.mqtt.port:" in problems[0], problems
    problems = _problems(model, section, {prefix + "KEEPALIVE_S": "1"})
    assert f"{section}.mqtt.keepalive_s:" in problems[0], problems


def test_city_is_one_rule_everywhere() -> None:
    from indicators.settings import IndicatorSettings

    for model, section in ((SimulateSettings, "simulate"), (IndicatorSettings, "indicators")):
        problems = _problems(model, section, {f"KOTA_{section.upper()}__CITY": "Jakarta Pusat"})
        assert f"{section}.city:" in problems[0], problems


def test_tls_settings_and_password_file(tmp_path: Path,
                                        certificates: tuple[Path, Path, Path]) -> None:
    ca_file, _cert, _key = certificates
    plain = MqttConnection()
    assert plain.ssl_context() is None and plain.resolved_password() is None
    secure = MqttPublishSettings(tls=True, ca_file=ca_file, port=8883)
    context = secure.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert secure.where() == "127.0.0.1:8883 (TLS)"
    (tmp_path / "pw").write_text("from-file\n")
    assert MqttConnection(username="u", password_file=tmp_path / "pw").resolved_password() \
        == "from-file"
    assert MqttConnection(username="u", password="p").resolved_password() == "p"  # type: ignore[arg-type]


# -- the backoff -----------------------------------------------------------------------------
def test_backoff_doubles_within_bounds_and_resets() -> None:
    backoff = Backoff(0.5, 10.0, rng=random.Random(1))
    ceilings, delays = [], []
    for _ in range(12):
        ceilings.append(backoff.ceiling())
        delays.append(backoff.next_delay())
    assert ceilings[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0] and set(ceilings[5:]) == {10.0}
    assert all(0.5 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert backoff.ceiling() == 0.5 and backoff.next_delay() == 0.5
    huge = Backoff(1.0, 60.0)
    huge.attempt = 10_000  # no overflow after a very long outage
    assert huge.next_delay() <= 60.0


def test_backoff_jitter_spreads_clients() -> None:
    spread = []  # ceiling 0.1 * 2**8 = 25.6
    for seed in range(200):
        one = Backoff(0.1, 100.0, rng=random.Random(seed))
        one.attempt = 8
        spread.append(one.next_delay())
    assert min(spread) < 5 and max(spread) > 20  # full jitter: anywhere below the ceiling
    half = []
    for seed in range(200):
        one = Backoff(0.1, 100.0, jitter=0.5, rng=random.Random(seed))
        one.attempt = 8
        half.append(one.next_delay())
    assert min(half) >= 12.8 and max(half) <= 25.6
    none = Backoff(0.1, 100.0, jitter=0)
    assert [none.next_delay() for _ in range(3)] == [0.1, 0.2, 0.4]
    for bad in ({"base_s": 0}, {"base_s": 2, "cap_s": 1}, {"jitter": 1.5}):
        with pytest.raises(ValueError):
            Backoff(**bad)  # type: ignore[arg-type]


# -- JSON logs -------------------------------------------------------------------------------
def test_json_log_lines_carry_the_context() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("kota.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.warning("rejected %d messages", 3,
                       extra={"device": "jkt-air-1", "reason": "out_of_range", "count": 3,
                              "path": Path("/x")})
        logger.info("with fields", extra={"fields": {"batch": 7}})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["logger"] == "kota.test.json" and first["level"] == "warning"
    assert first["msg"] == "rejected 3 messages" and first["ts"].endswith("Z")
    assert first["device"] == "jkt-air-1" and first["reason"] == "out_of_range"
    assert first["count"] == 3 and first["path"] == "/x"
    assert "args" not in first and "levelno" not in first
    assert second["batch"] == 7
    assert third["level"] == "error" and "RuntimeError: boom" in third["exc"]


# -- the service command skeleton ------------------------------------------------------------
def test_every_service_command_exits_2_on_bad_settings() -> None:
    from api.cli import api
    from indicators.cli import indicators
    from ingest.cli import ingest
    from simulators.cli import simulate

    for command, variable in ((ingest, "KOTA_INGEST__MQTT__PORT"),
                              (simulate, "KOTA_SIMULATE__MQTT__PORT"),
                              (api, "KOTA_API__PORT"), (indicators, "KOTA_INDICATORS__LOG_LEVEL")):
        result = CliRunner().invoke(command, ["--check"], env={variable: "0"})
        assert result.exit_code == 2, (command.name, result.output)
        assert f"error: {variable}='0':" in result.output, result.output
        help_text = CliRunner().invoke(command, ["--help"]).output
        assert "Exit codes: 0" in help_text and "2 bad settings" in help_text


# -- against the real broker -----------------------------------------------------------------
@pytest.mark.slow
def test_simulator_publishes_over_tls(tmp_path: Path, mosquitto: LocalService,
                                      certificates: tuple[Path, Path, Path]) -> None:
    ca_file, _cert, _key = certificates
    broker = start_mosquitto(tmp_path / "tls-broker", tls_files=certificates)
    try:
        tls_port = broker.extra_ports["tls"]
        settings = MqttPublishSettings(port=tls_port, tls=True, ca_file=ca_file,
                                       client_id="sim-tls-test", connect_timeout_s=5)
        with MqttPublisher(settings) as publisher:
            for number in range(20):
                publisher.publish(f"kota/jakarta/air/tls-{number}", b'{"pm25": 1}')
            publisher.flush()
        assert publisher.acknowledged == 20 and publisher.failed == 0
        # The TLS settings are really used: without the CA the server is not trusted, and a
        # plain client gets no answer from the TLS port.
        with pytest.raises(PublishError):
            MqttPublisher(settings.model_copy(update={"ca_file": None})).connect()
        with pytest.raises(PublishError):
            MqttPublisher(settings.model_copy(update={"tls": False, "ca_file": None,
                                                      "connect_timeout_s": 2})).connect()
    finally:
        broker.stop()


@pytest.mark.slow
def test_data_lag_is_the_age_of_the_newest_reading(tmp_path: Path, mosquitto: LocalService,
                                                   influxdb: LocalService, database: str,
                                                   client_id: str, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            MQTT__CLIENT_ID=client_id).start()
    assert ingest.metric("kota_ingest_data_lag_seconds") == 0.0  # nothing written yet
    hour_ago = int(time.time()) - 3600
    publish(mosquitto.port, [("kota/jakarta/air/dev-lag-1", {"pm25": 10.0, "ts": hour_ago}),
                             ("kota/jakarta/air/dev-lag-2", {"pm25": 11.0, "ts": hour_ago + 60})],
            client_id=f"{client_id}-pub")
    wait_until(lambda: (ingest.metric("kota_ingest_points_written") or 0) >= 2, 30, "written")
    lag = ingest.metric("kota_ingest_data_lag_seconds")
    assert lag is not None and 3540 - 5 <= lag <= 3540 + 60, lag  # the newest of the two
    # A fresh reading brings it back down.
    publish(mosquitto.port, [("kota/jakarta/air/dev-lag-1", {"pm25": 12.0,
                                                             "ts": int(time.time())})],
            client_id=f"{client_id}-pub")
    wait_until(lambda: (ingest.metric("kota_ingest_data_lag_seconds") or 9e9) < 60, 30,
               "data lag of a fresh reading")
