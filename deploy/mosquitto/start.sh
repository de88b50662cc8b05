#!/bin/sh
# The mosquitto container's entrypoint (docker-compose.yml): copy the dynamic security plugin's
# seed (made by make-secrets.sh, mounted read-only) into the data volume when no copy is there
# yet, then run the image's own entrypoint with the command. The plugin rewrites that copy for
# every device provisioned or decommissioned, so it is never overwritten here: a second
# make-secrets.sh run does not undo provisioning. tests/deploy/test_provisioning.py runs it.
set -eu
seed="${KOTA_DYNSEC_SEED:-/mosquitto/secrets/dynamic-security.json}"
live="${KOTA_DYNSEC_FILE:-/mosquitto/data/dynamic-security.json}"
if [ ! -f "$live" ]; then
  if [ ! -f "$seed" ]; then
    echo "start.sh: $seed is missing: run deploy/mosquitto/make-secrets.sh" >&2
    exit 1
  fi
  cp "$seed" "$live.new"
  chmod 600 "$live.new"
  # The image's mosquitto user must rewrite it (the broker drops root after reading config).
  if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$live.new"; fi
  mv "$live.new" "$live"
  echo "start.sh: $live made from $seed" >&2
fi
exec "$@"
