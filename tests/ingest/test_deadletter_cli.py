"""`kota deadletter`: reads the folder the configuration names (or the demo's), says which,
counts per reason and per device, and refuses unknown folders and reason codes in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kota_testing import REPO

from ingest.deadletter import DeadLetter, DeadLetterStore
from kota.payload import REASONS


def _write_letters(folder: Path) -> None:
    """Six records written by ingest's own writer: 3 out_of_range, 2 not_json, 1 refused batch."""
    store = DeadLetterStore(folder, 1024 * 1024)
    store.append([
        DeadLetter(1_700_000_000_000, "kota/jakarta/air/jkt-air-001", "out_of_range",
                   "pm25 = 9000 above 1000", b'{"pm25": 9000}'),
        DeadLetter(1_700_000_001_000, "kota/jakarta/air/jkt-air-001", "out_of_range",
                   "pm25 = 8000 above 1000", b'{"pm25": 8000}'),
        DeadLetter(1_700_000_002_000, "kota/jakarta/water/jkt-water-002", "out_of_range",
                   "level_cm = -9999", b'{"level_cm": -9999}'),
        DeadLetter(1_700_000_003_000, "kota/jakarta/air/jkt-air-003", "not_json", "truncated",
                   b'{"pm25": 1'),
        DeadLetter(1_700_000_004_000, "kota/jakarta/air/jkt-air-003", "not_json", "truncated",
                   b"\xff\xfe"),
    ], "20231114")
    store.append([DeadLetter(1_700_000_005_000, "", "influx_refused", "HTTP 400: field type",
                             b"air,device=x pm25=1i 1700000005000", keep_whole=True)], "20231114")


def _kota(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    environ["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "kota", "deadletter", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env={**environ, **env})


@pytest.mark.slow
def test_summary_reads_the_demo_config_and_counts_per_reason_and_device(tmp_path: Path) -> None:
    demo = tmp_path / "run" / "demo"
    _write_letters(demo / "ingest" / "deadletter")
    (demo / "kota.yaml").write_text(
        "ingest:\n  deadletter:\n    dir: run/demo/ingest/deadletter\n", encoding="utf-8")
    result = _kota(tmp_path, "--summary")
    assert result.returncode == 0, result.stderr
    assert "no kota.yaml here; reading the demo's run/demo/kota.yaml" in result.stderr
    assert ("reading run/demo/ingest/deadletter (ingest.deadletter.dir in "
            "run/demo/kota.yaml:3)") in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "by reason:"
    assert lines[1].split()[:2] == ["3", "out_of_range"]
    assert REASONS["out_of_range"] in lines[1]
    assert lines[2].split()[:2] == ["2", "not_json"]
    assert lines[3].split()[:2] == ["1", "influx_refused"]
    device_lines = lines[lines.index("by device:") + 1:-1]
    counts = {line.split(maxsplit=1)[1]: int(line.split()[0]) for line in device_lines}
    assert counts == {"jkt-air-001": 2, "jkt-air-003": 2, "jkt-water-002": 1,
                      "(no device: InfluxDB batch)": 1}
    assert lines[-1] == ("6 dead letters in run/demo/ingest/deadletter (3 reasons, 4 devices)")


@pytest.mark.slow
def test_the_configuration_beats_the_demo_and_records_are_json_lines(tmp_path: Path) -> None:
    _write_letters(tmp_path / "mine")
    (tmp_path / "run" / "demo").mkdir(parents=True)
    (tmp_path / "run" / "demo" / "kota.yaml").write_text("ingest: {}\n", encoding="utf-8")
    (tmp_path / "kota.yaml").write_text("ingest:\n  deadletter:\n    dir: mine\n",
                                        encoding="utf-8")
    result = _kota(tmp_path, "--reason", "not_json", "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert "demo" not in result.stderr
    assert "reading mine (ingest.deadletter.dir in kota.yaml:3)" in result.stderr
    assert len(result.stdout.splitlines()) == 1 and '"payload_b64"' in result.stdout
    assert "2 dead letters with reason not_json in mine (showing the last 1)" in result.stderr
    # The environment beats the file, and the message says so.
    _write_letters(tmp_path / "other")
    result = _kota(tmp_path, "--summary", KOTA_INGEST__DEADLETTER__DIR=str(tmp_path / "other"))
    assert result.returncode == 0, result.stderr
    assert "from $KOTA_INGEST__DEADLETTER__DIR" in result.stderr
    # --config names the file; --dir names the folder itself.
    config = tmp_path / "elsewhere.yaml"
    config.write_text(f"ingest:\n  deadletter:\n    dir: {tmp_path / 'other'}\n", encoding="utf-8")
    result = _kota(tmp_path, "--config", str(config), "--summary")
    assert result.stdout.splitlines()[-1].startswith(f"6 dead letters in {tmp_path / 'other'}")
    result = _kota(tmp_path, "--dir", "mine", "--summary")
    assert "reading mine (--dir)" in result.stderr and "6 dead letters" in result.stdout


@pytest.mark.slow
def test_worker_subfolders_and_a_torn_line_are_read(tmp_path: Path) -> None:
    _write_letters(tmp_path / "dl" / "1")
    _write_letters(tmp_path / "dl" / "2")
    part = next((tmp_path / "dl" / "2").glob("deadletter-*.jsonl"))
    with part.open("ab") as handle:
        handle.write(b'{"reason": "out_of_ra')  # a crash mid-line
    result = _kota(tmp_path, "--dir", "dl", "--summary")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("12 dead letters in dl")
    assert "1 line(s)" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("args", "expected"), [
    (["--dir", "/nonexistent/dl"], "error: /nonexistent/dl: no such folder (--dir)"),
    (["--reason", "bogus"], "error: --reason 'bogus' is not a reason code; known: bad_topic, "),
    (["--reason", "out_of_rang"], "error: --reason 'out_of_rang' is not a reason code (did you "
                                  "mean 'out_of_range'?)"),
])
def test_bad_folder_and_reason_are_one_line_errors(tmp_path: Path, args: list[str],
                                                   expected: str) -> None:
    _write_letters(tmp_path / "dl")
    if "--dir" not in args:
        args = [*args, "--dir", "dl"]
    result = _kota(tmp_path, *args)
    assert result.returncode == 2
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.splitlines()) == 1
    if "bogus" in args:
        assert "influx_refused" in result.stderr and all(r in result.stderr for r in REASONS)


@pytest.mark.slow
def test_missing_default_folder_names_the_setting(tmp_path: Path) -> None:
    result = _kota(tmp_path, "--summary")
    assert result.returncode == 2
    assert result.stderr.startswith("error: run/ingest/deadletter: no such folder "
                                    "(ingest.deadletter.dir default; no kota.yaml here")
    (tmp_path / "kota.yaml").write_text("ingest:\n  deadletter:\n    dir: gone\n", encoding="utf-8")
    result = _kota(tmp_path, "--summary")
    assert result.returncode == 2
    assert result.stderr.startswith("error: gone: no such folder (ingest.deadletter.dir in "
                                    "kota.yaml:3)")
