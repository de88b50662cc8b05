"""``python -m agent`` is ``kota-agent``."""

from agent.cli import main

main()
