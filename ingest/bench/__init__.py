"""``kota bench``: measurements of the pipeline on one machine, broker and InfluxDB included.

Scripts, not tests: they report figures next to the targets and exit 0 either way.
``kota bench ingest`` (ingest.bench.ingest) times backlog drain, live latency and two floors.
"""
