"""What `make test` relies on when it runs the suite on parallel workers (pytest-xdist):
the programs check still fails the session when a worker ran an uninstalled program, and the
machine-wide lock keeps two demos (fixed ports) apart across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kota_testing import REPO
from machine_lock import lock_path, machine_lock

PROBE = '''
import subprocess

import pytest


def test_runs_a_program_nobody_installs() -> None:
    with pytest.raises(FileNotFoundError):  # the launch is recorded all the same
        subprocess.run(["/usr/bin/kota-no-such-program"], check=False)
'''


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_program_no_script_installs_fails_the_session_serial_or_parallel(
        tmp_path: Path, workers: str) -> None:
    """tests/conftest.py as the only plugin, on a probe test, serially and on two workers
    (where the workers record the programs and the controller checks them)."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "tests"), str(REPO / "tests" / "support"), str(REPO)])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "conftest", "-n", workers, "test_probe.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert "1 passed" in result.stdout, result.stdout + result.stderr
    assert "ERROR: the suite ran kota-no-such-program" in result.stdout, result.stdout
    assert result.returncode == 1, result.stdout


HOLDER = '''
import sys, time
from machine_lock import machine_lock
with machine_lock(sys.argv[1], timeout_s=10):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    print(time.time(), flush=True)  # the moment it lets go
'''


def test_the_machine_lock_excludes_another_process_and_its_wait_is_bounded() -> None:
    name = f"kota-test-lock-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "support")}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, name, "2"], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError, match="still held"), machine_lock(name, timeout_s=0.3):
            pass
        with machine_lock(name, timeout_s=30) as waited_s:
            acquired_at = time.time()
        released_at = float(holder.stdout.readline())
        assert acquired_at >= released_at, "the lock was given while another process held it"
        assert 0.5 < waited_s < 30
    finally:
        holder.kill()
        holder.wait(10)
        lock_path(name).unlink(missing_ok=True)
