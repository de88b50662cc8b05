"""``kota alerts deliver`` reads only its part of ``alerts:`` (alerts/deliver.py): the rest is
kota alerts', so a deliver process does not load the rule kinds and the channels' client
libraries. Checked in a fresh interpreter, with the settings errors a user would see."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alerts.deliver import DeliverSettings
from kota.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_the_other_alerts_settings_are_left_to_kota_alerts(tmp_path: Path) -> None:
    config = tmp_path / "kota.yaml"
    config.write_text("alerts:\n"
                      "  rules_file: /nowhere/rules.yaml\n"
                      "  channels: [{type: carrier-pigeon, name: x}]\n"
                      "  database: {url: 'sqlite:///run/deliver.db'}\n"
                      "  subscriptions:\n"
                      "    delivery: {batch: 250}\n", encoding="utf-8")
    settings = load_settings(DeliverSettings, "alerts", config, environ={})
    assert settings.database.url == "sqlite:///run/deliver.db"
    assert settings.subscriptions.delivery.batch == 250


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("alerts:\n  subscriptions:\n    delivery:\n      batch: 0\n",
     ":4: alerts.subscriptions.delivery.batch: "),
    ("alerts:\n  subscriptions:\n    delivery:\n      bach: 10\n",
     ":4: alerts.subscriptions.delivery.bach: "),
    ("alerts:\n  database:\n    url: mysql://x\n",
     ":3: alerts.database.url: "),
])
def test_its_own_settings_are_still_checked_with_file_and_line(
        tmp_path: Path, yaml_text: str, expected: str) -> None:
    config = tmp_path / "kota.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(DeliverSettings, "alerts", config, environ={})
    assert any(f"{config}{expected}" in problem for problem in raised.value.problems), \
        raised.value.problems


def test_a_deliver_process_does_not_load_rules_or_channel_clients() -> None:
    probe = ("import sys\n"
             "from kota.cli import main\n"
             "import alerts.cli, alerts.deliver, store.db\n"
             "import alerts.subscriptions.notifier, alerts.subscriptions.senders.email\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('paho', 'aiomqtt', 'indicators', 'alembic') or m.startswith('alerts.rules') "
             "or m in ('alerts.settings', 'alerts.channels.registry', 'alerts.outbox', "
             "'httpx'))\n"
             "print(' '.join(heavy))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == "", result.stdout


def test_the_alerts_help_still_lists_every_setting() -> None:
    result = subprocess.run([sys.executable, "-m", "kota.cli", "alerts", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True)
    assert "alerts.rules_file" in result.stdout
    assert "alerts.subscriptions.delivery.batch" in result.stdout


def test_check_prints_what_it_reads_without_the_password(tmp_path: Path) -> None:
    config = tmp_path / "kota.yaml"
    config.write_text("alerts:\n"
                      "  database: {url: 'postgresql://kota:rahasia-sekali@127.0.0.1:9/kota'}\n"
                      "  rules_file: /nowhere/rules.yaml\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "kota.cli", "alerts", "deliver", "--check",
                             "--config", str(config), "--channel", "email"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "rahasia-sekali" not in result.stdout
    assert "postgresql://kota:***@127.0.0.1:9/kota" in result.stdout
    assert "journal_dir" in result.stdout and "rules_file" not in result.stdout
    assert result.stdout.strip().endswith("kota alerts deliver settings OK (email)")
