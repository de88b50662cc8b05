"""Headless Chromium for the page tests: Debian's package (``/usr/bin/chromium``, from
scripts/install-services.sh) driven by Playwright's sync API. No browser is downloaded:
``playwright install`` is never run, the launch names the system executable.

Chromium runs with a profile of our own in a fresh temporary folder, so every process it
starts (the browser, its zygotes, renderers and utility helpers all carry
``--user-data-dir=<profile>``) can be found in /proc. On the way out the browser is closed, any
process still naming the profile is waited for and then killed, and only then is the profile
removed: Chromium's helpers outlive the main process by a moment and keep writing to the
profile, and removing it under them once failed CI with "Directory not empty".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

CHROMIUM = shutil.which("chromium")
# No sandbox (the tests may run as root), no GPU, and nothing that talks to the internet.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage"]


@dataclass
class Browsed:
    """The page, plus what it did: uncaught script errors and every URL it requested."""

    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def profile_processes(profile: Path) -> list[int]:
    """The processes whose command line names ``profile``: the Chromium we started, only."""
    marker = f"--user-data-dir={profile}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker in cmdline.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_profile_processes(profile: Path, grace_s: float = 5) -> None:
    """Wait up to ``grace_s`` for the profile's processes to exit, then kill what is left."""
    deadline = time.monotonic() + grace_s
    while profile_processes(profile) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = profile_processes(profile)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = profile_processes(profile)
    assert not left, f"Chromium processes still running after SIGKILL: {left}"


def remove_profile(profile: Path) -> None:
    """Remove the profile folder, retrying a few times while late writes settle."""
    for _attempt in range(20):
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.25)
    shutil.rmtree(profile)  # the last attempt raises what is still wrong


@contextlib.contextmanager
def chromium_page() -> Iterator[Browsed]:
    """A blank page in a new headless Chromium; everything is stopped and removed after."""
    assert CHROMIUM is not None, "chromium is not installed: scripts/install-services.sh test"
    profile = Path(tempfile.mkdtemp(prefix="kota-chromium-"))
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1400, "height": 900},
                timeout=30_000)
            try:
                page = context.pages[0] if context.pages else context.new_page()
                browsed = Browsed(page)
                page.on("pageerror", lambda error: browsed.errors.append(str(error)))
                page.on("request", lambda request: browsed.requests.append(request.url))
                yield browsed
            finally:
                with contextlib.suppress(PlaywrightError):  # already gone: cleaned up below
                    context.close()
    finally:
        stop_profile_processes(profile)
        remove_profile(profile)
