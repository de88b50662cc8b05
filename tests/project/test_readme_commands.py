"""Every command in README.md's "Commands" block runs verbatim on a fresh checkout after the demo.

The checkout is a copy of what git would commit (tracked and untracked-but-not-ignored files)
in a temporary folder, made a git repository of its own so that a command which dirties a
tracked file is caught. The repository's code runs from that copy (PYTHONPATH), with
``.venv/bin`` first on PATH. ``kota demo`` runs there first, as ``make demo`` would (its data
in ``run/demo/``), until the API answers with current readings; it is stopped by PID with
SIGINT; then each command line runs through bash exactly as written.

The demo prefers fixed ports and ``kota api`` listens on 8000: the test holds ``demo_ports``
(tests/conftest.py), so no other test worker or pytest run on this machine runs a demo meanwhile.

Commands that keep running are started, must stay up (``kota api``) or print their first line
(``kota bench ingest``) for a few seconds, and are then stopped by PID. A command the tables
below do not know, or a placeholder (FILE, URL) left in the README, fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from kota_testing import REPO as REPO_ROOT
from kota_testing import wait_until

from devstack.localstack import stop_process

ROOT = REPO_ROOT
VENV_BIN = Path(sys.executable).parent

# How each command of the block is run, by its leading words (the longest match wins).
COMPLETES = ("kota --help", "kota simulate", "kota ingest", "kota config check",
             "kota deadletter", "kota ispu", "kota siaga", "kota indicators",
             "kota dashboards build", "kota broker acl", "kota-agent", "kota alerts --check")
STAYS_UP = ("kota api",)              # a server: still running after STAY_UP_S, then stopped
FIRST_LINE = ("kota bench ingest",)   # long: prints its first line within FIRST_LINE_S, stopped
STAY_UP_S = 5.0
FIRST_LINE_S = 60.0
COMPLETE_TIMEOUT_S = 120.0
# Output a command must show after the demo, beside exit code 0.
EXPECT = {"kota deadletter --summary": re.compile(r"out_of_range|timestamp_|not_json"),
          "kota ispu pm25=80 pm10=120": re.compile(r"(?i)sedang|tidak sehat"),
          "kota siaga manggarai 870": re.compile(r"(?i)siaga|waspada|awas|normal")}
_PLACEHOLDER = re.compile(r"(?<![-\w])[A-Z][A-Z_]{2,}(?![\w=])")  # FILE, URL, RUN_DIR ...


def readme_commands(text: str) -> list[str]:
    """The command lines of the ```sh blocks under "## Commands", comments removed."""
    section = re.search(r"^## Commands\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, 'README.md has no "## Commands" section'
    commands = []
    for block in re.findall(r"^```sh\s*$(.*?)^```\s*$", section.group(1), re.M | re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    assert commands, 'no ```sh command block under "## Commands" in README.md'
    return commands


def how_to_run(command: str) -> str:
    """'completes', 'stays_up' or 'first_line'; AssertionError for an unknown command."""
    placeholder = _PLACEHOLDER.search(command)
    assert placeholder is None, (f"README command {command!r} has the placeholder "
                                 f"{placeholder.group(0) if placeholder else ''}: write a "
                                 "runnable example instead")
    known = [(prefix, mode) for mode, prefixes in (("completes", COMPLETES),
                                                   ("stays_up", STAYS_UP),
                                                   ("first_line", FIRST_LINE))
             for prefix in prefixes
             if command == prefix or command.startswith(prefix + " ")]
    assert known, (f"README command {command!r} is new to {Path(__file__).name}: add it to "
                   "COMPLETES, STAYS_UP or FIRST_LINE")
    return max(known, key=lambda item: len(item[0]))[1]


def _checkout(target: Path) -> None:
    """What a clone would hold, plus files not yet committed (but not ignored ones)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "checkout"], cwd=target, check=True)


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Ctrl-C, as a person would; SIGKILL after ``timeout_s``."""
    stop_process(process, timeout_s, signal.SIGINT)


def _run_demo(checkout: Path, env: dict[str, str], out: Path) -> None:
    """`kota demo` (as `make demo` runs it) until the API shows current readings, then Ctrl-C."""
    with out.open("wb") as log:
        demo = subprocess.Popen(["kota", "demo"], cwd=checkout, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "demo is running" in out.read_text() or demo.poll() is not None,
                   90, "the demo's banner")
        assert demo.poll() is None, out.read_text()
        config = yaml.safe_load((checkout / "run" / "demo" / "kota.yaml").read_text())
        latest = f"http://127.0.0.1:{config['api']['port']}/api/v1/readings/latest"

        def current() -> bool:
            try:
                readings = httpx.get(latest, timeout=5).json()["readings"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            return bool(readings) and max(r["time_ms"] for r in readings) > (time.time()
                                                                            - 300) * 1000

        wait_until(current, 60, "current readings on the demo's API")
    finally:
        _stop(demo)
    assert demo.returncode == 0, out.read_text()


def _run(command: str, mode: str, checkout: Path, env: dict[str, str],
         out: Path) -> tuple[int | None, str]:
    with out.open("wb") as log:
        process = subprocess.Popen(["bash", "-c", command], cwd=checkout, env=env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        if mode == "completes":
            process.wait(COMPLETE_TIMEOUT_S)
            return process.returncode, out.read_text()
        if mode == "stays_up":
            time.sleep(STAY_UP_S)
            assert process.poll() is None, (f"{command!r} exited with {process.returncode} "
                                            f"within {STAY_UP_S:g} s:\n{out.read_text()}")
            return None, out.read_text()
        wait_until(lambda: out.read_text().strip() != "" or process.poll() is not None,
                   FIRST_LINE_S, f"the first line of {command!r}")
        # A few seconds more, so that it is past starting its own services when stopped.
        deadline = time.monotonic() + STAY_UP_S
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() in (None, 0), f"{command!r} failed:\n{out.read_text()}"
        return None, out.read_text()
    finally:
        _stop(process)


def test_readme_knows_how_to_run_each_of_its_commands() -> None:
    for command in readme_commands((ROOT / "README.md").read_text(encoding="utf-8")):
        how_to_run(command)


@pytest.mark.slow
def test_readme_commands_run_verbatim_after_the_demo(tmp_path: Path, demo_ports: None) -> None:
    checkout = tmp_path / "kota-cerdas"
    _checkout(checkout)
    commands = readme_commands((checkout / "README.md").read_text(encoding="utf-8"))
    modes = {command: how_to_run(command) for command in commands}
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(checkout)}
    for name in [key for key in env if key.startswith("KOTA_")]:
        del env[name]
    _run_demo(checkout, env, tmp_path / "demo.out")

    failures = []
    for number, command in enumerate(commands):
        code, output = _run(command, modes[command], checkout, env,
                            tmp_path / f"command-{number}.out")
        if code not in (0, None):
            failures.append(f"$ {command}\nexit {code}\n{output[-2000:]}")
        elif command in EXPECT and not EXPECT[command].search(output):
            failures.append(f"$ {command}\noutput lacks {EXPECT[command].pattern!r}:\n"
                            f"{output[-2000:]}")
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=checkout, capture_output=True, text=True, check=True).stdout
    assert not failures, "\n\n".join(failures)
    assert not dirty, f"README commands changed tracked files:\n{dirty}"
