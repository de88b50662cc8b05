"""`kota demo` (what `make demo` runs): everything comes up, data flows, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from kota_testing import wait_until


def _points(influx_port: int) -> int:
    try:
        response = httpx.get(f"http://127.0.0.1:{influx_port}/query",
                             params={"db": "kota", "q": "SELECT count(*) FROM air"},
                             timeout=5).json()
    except httpx.HTTPError:
        return 0
    series = response["results"][0].get("series")
    return int(max(v for v in series[0]["values"][0][1:] if v)) if series else 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; /proc tells.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_demo_starts_everything_shows_data_and_stops_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "demo"
    log = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen([sys.executable, "-m", "kota", "demo", "--run-dir", str(run_dir),
                             "--speed", "600"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (run_dir / "kota.yaml").exists(), 60, "the demo config")
        config = yaml.safe_load((run_dir / "kota.yaml").read_text())
        influx_port = int(config["ingest"]["influx"]["url"].rsplit(":", 1)[1])
        wait_until(lambda: _points(influx_port) > 0, 90, "simulated air points in InfluxDB")
        output = (tmp_path / "demo.out").read_text()
        assert "Kota Cerdas demo is running" in output
        pids = [int(line.split("pid")[1].split()[0]) for line in output.splitlines()
                if " pid " in line]
        assert len(pids) == 6  # broker, database, ingest, api, simulator, indicators
        demo.send_signal(signal.SIGINT)
        demo.wait(60)
        assert demo.returncode == 0
        time.sleep(0.5)
        assert not [pid for pid in pids if _alive(pid)]
        final = (tmp_path / "demo.out").read_text()
        assert "points stored: air" in final
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
        log.close()
