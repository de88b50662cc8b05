#!/bin/bash
# Run once by the influxdb:2.7 image after 10-kota-dbrp.sh (same conditions: first start, empty
# data volume, the influx CLI already configured with the operator token and org).
#
# Gives each service its own v1 authorization (user name + password from .env) with the least it
# needs on the bucket, so that no service holds the operator token:
#
#   user              password variable              may on the bucket
#   kota-ingest       INFLUXDB_INGEST_PASSWORD       write (stores readings)
#   kota-indicators   INFLUXDB_INDICATORS_PASSWORD   read, write (reads readings, writes indicators)
#   kota-api          INFLUXDB_API_PASSWORD          read
#   kota-grafana      INFLUXDB_GRAFANA_PASSWORD      read
#   kota-alerts       INFLUXDB_ALERTS_PASSWORD       read, write (reads indicators, writes alert_events)
#
# v1 authorizations, not API tokens, because `influx auth create` cannot take a chosen token value
# while `influx v1 auth create --password` can: the secret stays in .env like the broker's
# (docs/decisions.md D16). Every service speaks the v1 API (/write, /query), where they work.
# A placeholder or empty password, or a change-me operator password or token, stops the
# container here; the image then removes the half-initialised data so the next start tries again.
# Change a password later with: influx v1 auth set-password --username kota-api --password ...
set -euo pipefail

die() { echo "20-kota-tokens.sh: $*" >&2; exit 1; }

# user, password variable, permissions (read/write), in the order of the table above
AUTHORIZATIONS="
kota-ingest      INFLUXDB_INGEST_PASSWORD      write
kota-indicators  INFLUXDB_INDICATORS_PASSWORD  read,write
kota-api         INFLUXDB_API_PASSWORD         read
kota-grafana     INFLUXDB_GRAFANA_PASSWORD     read
kota-alerts      INFLUXDB_ALERTS_PASSWORD      read,write
"

placeholder() {  # the variable $1 holds .env.example's change-me value
  case "${!1:-}" in *change-me*) return 0 ;; esac
  return 1
}

bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}"
[ -n "$bucket_id" ] || die "DOCKER_INFLUXDB_INIT_BUCKET_ID is not set (not run by the image's setup?)"
for name in DOCKER_INFLUXDB_INIT_PASSWORD DOCKER_INFLUXDB_INIT_ADMIN_TOKEN; do
  if placeholder "$name"; then die "$name is still the change-me placeholder: set a real one in .env"; fi
done

# Check every password before creating anything.
while read -r user variable permissions; do
  [ -n "$user" ] || continue
  [ -n "${!variable:-}" ] || die "$variable is empty: set it in .env (the password of $user)"
  if placeholder "$variable"; then
    die "$variable is still the change-me placeholder: set a real one in .env"
  fi
  password="${!variable}"
  [ "${#password}" -ge 16 ] || die "$variable is shorter than 16 characters (openssl rand -hex 24" \
                                   "makes one)"
done <<< "$AUTHORIZATIONS"

while read -r user variable permissions; do
  [ -n "$user" ] || continue
  flags=()
  for permission in ${permissions//,/ }; do
    flags+=("--${permission}-bucket" "$bucket_id")
  done
  # --password on the command line: visible to `ps` inside this container for a moment, during
  # first start only, when nothing else runs in it.
  influx v1 auth create \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --username "$user" \
    --password "${!variable}" \
    "${flags[@]}" \
    --description "kota: $user ($permissions)" >/dev/null
  echo "kota: v1 authorization '$user' may ${permissions/,/ and } bucket '${DOCKER_INFLUXDB_INIT_BUCKET}'"
done <<< "$AUTHORIZATIONS"
