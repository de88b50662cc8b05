#!/bin/bash
# Run once by the influxdb:2.7 image, right after its automated setup (DOCKER_INFLUXDB_INIT_MODE
# =setup) on an empty data volume; never again once the volume holds a database. The image runs
# every executable *.sh in /docker-entrypoint-initdb.d with INFLUX_HOST, the influx CLI
# configuration (operator token, org) and DOCKER_INFLUXDB_INIT_BUCKET_ID already set.
#
# Ingest writes through the v1-compatible /write API (?db=kota), so the v1 database name must
# map onto the bucket: a DBRP mapping, marked default so that writes without ?rp= land in it.
# A failure here stops the container; the image then removes the half-initialised data so the
# next start tries again.
set -euo pipefail

database="${V1_DB_NAME:-kota}"
retention_policy="${V1_RP_NAME:-autogen}"

influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${database}" \
  --rp "${retention_policy}" \
  --default

echo "kota: v1 database '${database}' (retention policy '${retention_policy}') now maps to" \
     "bucket '${DOCKER_INFLUXDB_INIT_BUCKET}'"
