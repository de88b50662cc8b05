"""Docker health check for ``kota ingest``: healthy while it is subscribed to the broker.

Reads ingest's Prometheus page and exits 0 only if ``kota_ingest_mqtt_connected`` is 1, so that
services started after ingest (the simulator) do not publish before ingest's session exists.
Usage: python healthcheck.py [URL]  (default http://127.0.0.1:9108/metrics).
"""

from __future__ import annotations

import sys
import urllib.request

GAUGE = "kota_ingest_mqtt_connected"


def connected(metrics_text: str) -> bool:
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name == GAUGE:
            try:
                return float(value) == 1.0
            except ValueError:
                return False
    return False


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "http://127.0.0.1:9108/metrics"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError as exc:
        print(f"ingest metrics unreachable at {url}: {exc}", file=sys.stderr)
        return 1
    if connected(text):
        return 0
    print(f"ingest is not connected to the MQTT broker ({GAUGE} is not 1)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
