#!/bin/sh
# Grafana's entrypoint in docker-compose.yml: refuse .env.example's change-me placeholders (Grafana
# itself would start with them), then hand over to the image's own start script.
#
#   entrypoint: ["/bin/sh", "/etc/kota/grafana-start.sh"]     (mounted read-only)
#
# GRAFANA_RUN: the script to hand over to (default /run.sh, the grafana/grafana image's entrypoint;
# tests set a stand-in).
set -eu

refuse() {  # variable name, its .env name
  eval "value=\${$1:-}"
  case "$value" in
    "") echo "grafana-start.sh: $1 is empty: set $2 in .env" >&2; exit 1 ;;
    *change-me*) echo "grafana-start.sh: $2 in .env is still the change-me placeholder: set a" \
                      "real one" >&2; exit 1 ;;
  esac
}

refuse GF_SECURITY_ADMIN_PASSWORD GRAFANA_ADMIN_PASSWORD
refuse KOTA_GRAFANA_INFLUX_PASSWORD INFLUXDB_GRAFANA_PASSWORD
exec "${GRAFANA_RUN:-/run.sh}" "$@"
