"""kota-agent: the Raspberry Pi sensor agent (drivers, store-and-forward, heartbeat).

Layout: ``drivers/<name>/`` one folder per sensor driver (same small contract, README, sample
config); ``queue.py`` the SQLite store-and-forward queue; ``publisher.py`` the only module that
talks MQTT; ``heartbeat.py`` the status reading; ``runner.py`` ties them together; ``config.py``
the TOML file; ``cli.py`` the ``kota-agent`` command. docs/agent.md is the user's guide.
"""

__version__ = "0.1.0"
