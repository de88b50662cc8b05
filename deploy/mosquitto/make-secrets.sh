#!/usr/bin/env bash
# Make the broker's secrets for docker-compose.yml: password file, ACL, CA and server certificate.
#
#   deploy/mosquitto/make-secrets.sh [--env FILE] [--registry FILE] [--agent ID]...
#                                    [--out DIR] [--rotate USER]... [--renew-cert]
#
# Reads the service passwords from .env (MOSQUITTO_INGEST_PASSWORD, MOSQUITTO_SIMULATOR_PASSWORD,
# MOSQUITTO_HEALTHCHECK_PASSWORD, MOSQUITTO_ALERTS_PASSWORD, MOSQUITTO_ALERTS_PUBLISHER_PASSWORD,
# MOSQUITTO_PROVISIONER_PASSWORD), the TLS names (MOSQUITTO_TLS_NAMES), how many ingest worker
# accounts to make (MOSQUITTO_INGEST_WORKERS, default 4: kota-ingest-1 .. kota-ingest-4 for
# `kota ingest --workers`, same password and rights as kota-ingest), and the device registry
# (default: simulators/cities/jakarta/devices.yaml). Writes, into DIR (deploy/mosquitto/secrets,
# git-ignored; docs/broker.md):
#
#   ca.key                  the CA's private key: keep it here, or offline; never on the broker
#   device-passwords.txt    device-account:password, to provision devices with (kept across runs)
#   broker/                 mounted read-only at /mosquitto/secrets in the mosquitto container:
#     passwd                hashed passwords (mosquitto_passwd), rewritten on every run
#     acl                   `kota broker acl` for the registry, rewritten on every run
#     dynamic-security.json the dynamic security plugin's seed (kota-provisioner); the broker
#                           works on its own copy in its data volume (docker-compose.yml)
#     ca.crt                the CA certificate devices trust (made once)
#     server.crt/.key       the broker's certificate, signed by the CA (made once; --renew-cert)
#
# Run it again after changing .env or the registry, then `docker compose kill -s HUP mosquitto`
# (mosquitto re-reads passwd and acl on SIGHUP). Needs openssl, mosquitto_passwd (or Docker,
# see MOSQUITTO_PASSWD below) and the kota command (KOTA_BROKER, default "kota broker").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
env_file="$repo/.env"
registry="$repo/simulators/cities/jakarta/devices.yaml"
out="$here/secrets"
agents=()
rotate=()
renew_cert=false

die() { echo "make-secrets.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --env) env_file="$2"; shift 2 ;;
    --registry) registry="$2"; shift 2 ;;
    --agent) agents+=(--agent "$2"); shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --rotate) rotate+=(--rotate "$2"); shift 2 ;;
    --renew-cert) renew_cert=true; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
done

[ -f "$env_file" ] || die "$env_file not found: cp .env.example .env and set the values"
[ -f "$registry" ] || die "registry $registry not found"
# Read only the variables this script needs from .env (no shell evaluation of the file).
env_value() {
  local line
  line="$(grep -E "^[[:space:]]*$1=" "$env_file" | tail -n 1 || true)"
  line="${line#*=}"; line="${line%\"}"; line="${line#\"}"; line="${line%\'}"; line="${line#\'}"
  printf '%s' "$line"
}
secret() {  # a required password: set, not a placeholder, no ':' (the passwd separator)
  local value; value="$(env_value "$1")"
  [ -n "$value" ] || die "$1 is empty in $env_file"
  case "$value" in change-me*) die "$1 in $env_file is still the placeholder: replace it" ;; esac
  case "$value" in *:*) die "$1 must not contain ':'" ;; esac
  printf '%s' "$value"
}
ingest_password="$(secret MOSQUITTO_INGEST_PASSWORD)"
healthcheck_password="$(secret MOSQUITTO_HEALTHCHECK_PASSWORD)"
# The simulator's account may write anywhere under kota/: leave it empty outside demos and it
# gets no password, so nobody can log in as kota-simulator.
simulator_password=""
if [ -n "$(env_value MOSQUITTO_SIMULATOR_PASSWORD)" ]; then
  simulator_password="$(secret MOSQUITTO_SIMULATOR_PASSWORD)"
fi
# kota-alerts (the alert service's stream subscriber: reads kota/#, publishes nothing):
# MOSQUITTO_ALERTS_PASSWORD; empty: no account.
alerts_password=""
if [ -n "$(env_value MOSQUITTO_ALERTS_PASSWORD)" ]; then
  alerts_password="$(secret MOSQUITTO_ALERTS_PASSWORD)"
fi
# kota-alerts-publisher (the alert service's MQTT channel: publishes kota/+/alerts/#, reads
# nothing). An account of its own because the broker binds client ids to user names: two
# connections of kota-alerts would take over each other's session. Empty
# MOSQUITTO_ALERTS_PUBLISHER_PASSWORD: no password, so nobody can log in as it.
alerts_publisher_password=""
if [ -n "$(env_value MOSQUITTO_ALERTS_PUBLISHER_PASSWORD)" ]; then
  alerts_publisher_password="$(secret MOSQUITTO_ALERTS_PUBLISHER_PASSWORD)"
fi
# kota-provisioner (dynamic-security commands only: `kota devices`, POST /api/v1/devices):
# MOSQUITTO_PROVISIONER_PASSWORD; empty: the plugin starts with no admin, nothing can be
# provisioned without a restart.
provisioner_password=""
if [ -n "$(env_value MOSQUITTO_PROVISIONER_PASSWORD)" ]; then
  provisioner_password="$(secret MOSQUITTO_PROVISIONER_PASSWORD)"
fi
tls_names="$(env_value MOSQUITTO_TLS_NAMES)"
# mosquitto.conf binds client ids to user names (use_username_as_clientid), so each ingest
# worker logs in with an account of its own: kota-ingest-<n>, its client id.
ingest_workers="$(env_value MOSQUITTO_INGEST_WORKERS)"
ingest_workers="${ingest_workers:-4}"
[[ "$ingest_workers" =~ ^[0-9]+$ ]] || die "MOSQUITTO_INGEST_WORKERS must be a number, not $ingest_workers"

read -r -a kota_broker <<< "${KOTA_BROKER:-kota broker}"
read -r -a mosquitto_passwd <<< "${MOSQUITTO_PASSWD:-mosquitto_passwd}"
command -v openssl >/dev/null || die "openssl not found"
command -v "${kota_broker[0]}" >/dev/null || die "${kota_broker[0]} not found: set KOTA_BROKER"
if ! command -v "${mosquitto_passwd[0]}" >/dev/null; then
  die "mosquitto_passwd not found: install mosquitto-clients' sibling package (Debian:" \
      "mosquitto), or set MOSQUITTO_PASSWD=\"docker run --rm -v $out/broker:$out/broker" \
      "eclipse-mosquitto:2.0.22 mosquitto_passwd\""
fi

umask 077
mkdir -p "$out/broker"
chmod 700 "$out"        # ca.key and device-passwords.txt: this user only
chmod 755 "$out/broker" # mounted into the container, whose mosquitto user (uid 1883) reads it

# -- ACL and device passwords from the registry -----------------------------------------------
"${kota_broker[@]}" acl --registry "$registry" --ingest-workers "$ingest_workers" \
  ${agents[@]+"${agents[@]}"} > "$out/broker/acl.new"
[ -z "$alerts_password" ] ||
  printf '\nuser kota-alerts\ntopic read kota/#\n' >> "$out/broker/acl.new"
[ -z "$alerts_publisher_password" ] ||
  printf '\nuser kota-alerts-publisher\ntopic write kota/+/alerts/#\n' >> "$out/broker/acl.new"
"${kota_broker[@]}" passwords --registry "$registry" ${agents[@]+"${agents[@]}"} ${rotate[@]+"${rotate[@]}"} \
  --file "$out/device-passwords.txt"

# -- password file: clear text in, hashed in place by mosquitto_passwd -U ----------------------
plain="$out/broker/passwd.new"
{
  printf 'kota-ingest:%s\n' "$ingest_password"
  counted=""  # its length counts the workers (no $((...)): tests/support/programs_check.py)
  while [ "${#counted}" -lt "$ingest_workers" ]; do
    counted="${counted}x"; printf 'kota-ingest-%s:%s\n' "${#counted}" "$ingest_password"
  done
  printf 'kota-healthcheck:%s\n' "$healthcheck_password"
  [ -z "$simulator_password" ] || printf 'kota-simulator:%s\n' "$simulator_password"
  [ -z "$alerts_password" ] || printf 'kota-alerts:%s\n' "$alerts_password"
  [ -z "$alerts_publisher_password" ] ||
    printf 'kota-alerts-publisher:%s\n' "$alerts_publisher_password"
  cat "$out/device-passwords.txt"
} > "$plain"
"${mosquitto_passwd[@]}" -U "$plain"
grep -q ':\$7\$' "$plain" || die "mosquitto_passwd did not hash $plain"

# -- dynamic security: the plugin's first file (docker-compose.yml copies it into the data
# volume once; the plugin keeps its own copy there up to date, so a run here never undoes a
# provisioned device). Only hashes: readable by the broker like passwd.
if [ -n "$provisioner_password" ]; then
  printf '%s\n' "$provisioner_password" | "${kota_broker[@]}" dynsec-config \
    > "$out/broker/dynamic-security.json.new"
else
  printf '%s\n' '{"clients": [], "roles": [], "groups": [], "defaultACLAccess":' \
    '{"publishClientSend": false, "publishClientReceive": false, "subscribe": false,' \
    '"unsubscribe": true}}' > "$out/broker/dynamic-security.json.new"
fi

# -- TLS: a private CA (made once) and the broker's certificate --------------------------------
if [ ! -f "$out/ca.key" ] || [ ! -f "$out/broker/ca.crt" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$out/ca.key" -out "$out/broker/ca.crt" -days 3650 -subj "/CN=Kota Cerdas MQTT CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  renew_cert=true
fi
if $renew_cert || [ ! -f "$out/broker/server.crt" ] || [ ! -f "$out/broker/server.key" ]; then
  san="DNS:mosquitto,DNS:localhost,IP:127.0.0.1"
  for name in ${tls_names//,/ }; do
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san="$san,IP:$name"
    else san="$san,DNS:$name"; fi
  done
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$out/broker/server.key.new" -out "$out/server.csr" -subj "/CN=mosquitto" 2>/dev/null
  openssl x509 -req -in "$out/server.csr" -CA "$out/broker/ca.crt" -CAkey "$out/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 825 -out "$out/broker/server.crt.new" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
                      "$san") 2>/dev/null
  rm -f "$out/server.csr"
  mv "$out/broker/server.key.new" "$out/broker/server.key"
  mv "$out/broker/server.crt.new" "$out/broker/server.crt"
  echo "make-secrets.sh: new server certificate for $san" >&2
fi

# The container's mosquitto user (uid 1883) must read these; the folder above is 0700, so other
# users of this machine cannot. (Mosquitto may warn that passwd is world readable.)
mv "$plain" "$out/broker/passwd"
mv "$out/broker/acl.new" "$out/broker/acl"
mv "$out/broker/dynamic-security.json.new" "$out/broker/dynamic-security.json"
chmod 644 "$out/broker/dynamic-security.json"
chmod 644 "$out/broker/passwd" "$out/broker/acl" "$out/broker/ca.crt" "$out/broker/server.crt"
# The TLS key: for the broker (uid 1883 in the container) only. Giving it to uid 1883 needs root;
# otherwise group 1883 if this user may set it, else readable by every process in the container.
key="$out/broker/server.key"
if [ "$(id -u)" = 0 ]; then
  chown 1883:1883 "$key"; chmod 600 "$key"
elif [ "$(stat -c %u "$key")" = 1883 ]; then
  :  # given to the broker by an earlier run as root: keep it so
elif chgrp 1883 "$key" 2>/dev/null; then
  chmod 640 "$key"
else
  chmod 644 "$key"
  echo "make-secrets.sh: warning: $key is 0644, readable by any process in the broker" \
       "container; run this script as root (sudo) to give it to uid 1883 with mode 0600" >&2
fi
chmod 600 "$out/ca.key" "$out/device-passwords.txt"
echo "make-secrets.sh: wrote $out/broker (passwd, acl, dynamic-security.json, ca.crt," \
     "server.crt, server.key)" >&2
