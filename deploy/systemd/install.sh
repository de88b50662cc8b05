#!/usr/bin/env bash
# Install the Kota Cerdas server without Docker: ingest, indicators, the API and alerts as
# systemd services, with Debian's mosquitto and influxdb (deploy/systemd/README.md).
#
#   sudo deploy/systemd/install.sh [--source PATH_OR_WHEEL] [--dry-run]
#   sudo deploy/systemd/install.sh --secrets [--dry-run]
#
# Without --secrets (idempotent; run it again to upgrade): apt packages (python3-venv,
# mosquitto, mosquitto-clients, influxdb, openssl), the system user kota, a venv in
# /opt/kota/venv with 'kota-cerdas[server]' from SOURCE (default: this checkout), /usr/local/bin/kota,
# the docs in /opt/kota/docs, /etc/kota/{kota.yaml,kota.env,devices.yaml,agents} (each copied
# only when missing), the units kota-ingest, kota-indicators, kota-api, kota-alerts and
# kota.target in /etc/systemd/system, then systemctl daemon-reload. It enables and starts nothing.
#
# --secrets: after editing /etc/kota/kota.env, devices.yaml or agents: runs
# deploy/mosquitto/make-secrets.sh (--env /etc/kota/kota.env --registry /etc/kota/devices.yaml
# --out /etc/kota/mosquitto, one --agent per line of /etc/kota/agents), copies the broker's files
# to /etc/mosquitto/kota/, seeds the dynamic security plugin's file in /var/lib/mosquitto once,
# installs /etc/mosquitto/conf.d/kota.conf (with this machine's plugin path), writes the alert
# MQTT channel's password file and reloads mosquitto (restarts it the first time).
# Device passwords: /etc/kota/mosquitto/device-passwords.txt.
#
# --dry-run prints every command instead of running it (no root needed).
set -euo pipefail

PREFIX=/opt/kota
CONFIG_DIR=/etc/kota
STATE_DIR=/var/lib/kota
SERVICE_USER=kota
UNIT_DIR=/etc/systemd/system
MOSQUITTO_DIR=/etc/mosquitto
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SOURCE="$REPO"
DRY_RUN=0
SECRETS=0
UNITS="kota-ingest.service kota-indicators.service kota-api.service kota-alerts.service kota-alerts-deliver@.service kota.target"
MOSQUITTO_DATA=/var/lib/mosquitto  # Debian's persistence_location
# The dynamic security plugin, by architecture (Debian's mosquitto package ships it).
DYNSEC_PLUGINS="/usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib/arm-linux-gnueabihf /usr/lib"
# The alert service's MQTT channel logs in with this file (kota.yaml, alerts.channels).
ALERTS_PUBLISHER_PASSWORD_FILE=/etc/kota/mqtt-alerts-publisher.password

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --source) [[ $# -ge 2 ]] || { echo "--source needs a value" >&2; exit 2; }
              SOURCE="$2"; shift 2 ;;
    --secrets) SECRETS=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

# run CMD...: run it, or with --dry-run print it (shell-quoted) instead.
run() {
  if [[ $DRY_RUN -eq 1 ]]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}
say() { echo "==> $*"; }

if [[ $DRY_RUN -eq 0 && $EUID -ne 0 ]]; then
  echo "run as root: sudo $0 $* (or --dry-run to see what it would do)" >&2
  exit 1
fi

# -- --secrets: broker passwords, ACL and certificate from /etc/kota ------------------------------
if [[ $SECRETS -eq 1 ]]; then
  agents=()
  if [[ -f "$CONFIG_DIR/agents" ]]; then
    while IFS= read -r line || [[ -n "$line" ]]; do
      line="${line%%#*}"; line="${line//[[:space:]]/}"
      [[ -z "$line" ]] || agents+=(--agent "$line")
    done < "$CONFIG_DIR/agents"
  fi
  say "broker secrets from $CONFIG_DIR/kota.env, devices.yaml and agents ($(( ${#agents[@]} / 2 )) agents)"
  run env KOTA_BROKER="$PREFIX/venv/bin/kota broker" "$REPO/deploy/mosquitto/make-secrets.sh" \
      --env "$CONFIG_DIR/kota.env" --registry "$CONFIG_DIR/devices.yaml" \
      --out "$CONFIG_DIR/mosquitto" ${agents[@]+"${agents[@]}"}
  first=0
  [[ -f "$MOSQUITTO_DIR/kota/passwd" ]] || first=1
  # The plugin is loaded at start only (SIGHUP does not): restart once when it is new.
  grep -q '^plugin ' "$MOSQUITTO_DIR/conf.d/kota.conf" 2>/dev/null || first=1
  say "$MOSQUITTO_DIR/kota (read by the mosquitto user) and $MOSQUITTO_DIR/conf.d/kota.conf"
  run install -d -m 0750 -o root -g mosquitto "$MOSQUITTO_DIR/kota"
  for file in passwd acl ca.crt server.crt server.key; do
    run install -m 0640 -o root -g mosquitto "$CONFIG_DIR/mosquitto/broker/$file" \
        "$MOSQUITTO_DIR/kota/$file"
  done
  plugin=""
  for folder in $DYNSEC_PLUGINS; do
    if [[ -f "$folder/mosquitto_dynamic_security.so" ]]; then
      plugin="$folder/mosquitto_dynamic_security.so"; break
    fi
  done
  if [[ -z "$plugin" ]]; then
    if [[ $DRY_RUN -eq 0 ]]; then
      echo "install.sh: mosquitto_dynamic_security.so not found in $DYNSEC_PLUGINS:" \
           "find it with: dpkg -L mosquitto | grep dynamic_security" >&2
      exit 1
    fi
    plugin=/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so  # dry run only
  fi
  say "dynamic security: $plugin, its file $MOSQUITTO_DATA/dynamic-security.json (seeded once)"
  run env KOTA_DYNSEC_SEED="$CONFIG_DIR/mosquitto/broker/dynamic-security.json" \
      KOTA_DYNSEC_FILE="$MOSQUITTO_DATA/dynamic-security.json" \
      sh "$REPO/deploy/mosquitto/start.sh" true
  run install -m 0644 "$HERE/mosquitto-kota.conf" "$MOSQUITTO_DIR/conf.d/kota.conf"
  run sed -i "s|^plugin .*\$|plugin $plugin|" "$MOSQUITTO_DIR/conf.d/kota.conf"
  # The alert service's MQTT channel (kota-alerts-publisher) reads its password from a file.
  publisher=""
  if [[ -f "$CONFIG_DIR/kota.env" ]]; then
    publisher="$(grep -E '^[[:space:]]*MOSQUITTO_ALERTS_PUBLISHER_PASSWORD=' \
                 "$CONFIG_DIR/kota.env" | tail -n 1 || true)"
    publisher="${publisher#*=}"
  fi
  if [[ -n "$publisher" ]]; then
    say "$ALERTS_PUBLISHER_PASSWORD_FILE (root:$SERVICE_USER 0640)"
    if [[ $DRY_RUN -eq 1 ]]; then
      echo "+ write $ALERTS_PUBLISHER_PASSWORD_FILE"
    else
      (umask 027; printf '%s\n' "$publisher" > "$ALERTS_PUBLISHER_PASSWORD_FILE")
      chgrp "$SERVICE_USER" "$ALERTS_PUBLISHER_PASSWORD_FILE"
    fi
  else
    echo "    MOSQUITTO_ALERTS_PUBLISHER_PASSWORD is empty: the alerts MQTT channel cannot log in"
  fi
  if [[ $first -eq 1 ]]; then
    say "restarting mosquitto (first time with the Kota settings)"
    run systemctl restart mosquitto.service
  else
    say "reloading mosquitto (SIGHUP: passwords and ACL re-read, sessions kept)"
    run systemctl reload mosquitto.service
  fi
  cat <<NEXT
Done. Give each device its line of $CONFIG_DIR/mosquitto/device-passwords.txt and
$CONFIG_DIR/mosquitto/broker/ca.crt. Changed devices.yaml? sudo systemctl restart kota.target
NEXT
  exit 0
fi

# -- install / upgrade ----------------------------------------------------------------------------
say "system packages"
run apt-get update -qq
run apt-get install -y -qq python3 python3-venv python3-pip mosquitto mosquitto-clients \
    influxdb openssl

say "user $SERVICE_USER"
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  run useradd --system --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
      "$SERVICE_USER"
fi

say "$PREFIX/venv with kota-cerdas[server] from $SOURCE"
run mkdir -p "$PREFIX"
run python3 -m venv "$PREFIX/venv"
run "$PREFIX/venv/bin/pip" install --quiet --upgrade pip
run "$PREFIX/venv/bin/pip" install --quiet --upgrade "${SOURCE}[server]"
run ln -sf "$PREFIX/venv/bin/kota" /usr/local/bin/kota
if [[ -d "$REPO/docs" ]]; then
  run mkdir -p "$PREFIX/docs"
  run cp -r "$REPO/docs/." "$PREFIX/docs/"
fi

say "$CONFIG_DIR (kept when present)"
run install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"
copy_once() {  # SOURCE_FILE TARGET MODE
  if [[ -e "$2" ]]; then
    echo "    $2 exists: kept"
  else
    run install -m "$3" -o root -g "$SERVICE_USER" "$1" "$2"
  fi
}
copy_once "$HERE/kota.yaml" "$CONFIG_DIR/kota.yaml" 0640
copy_once "$HERE/kota.env.example" "$CONFIG_DIR/kota.env" 0640
copy_once "$HERE/devices.yaml" "$CONFIG_DIR/devices.yaml" 0644
copy_once "$HERE/agents" "$CONFIG_DIR/agents" 0644

say "systemd units in $UNIT_DIR"
for unit in $UNITS; do
  run install -m 0644 "$HERE/$unit" "$UNIT_DIR/$unit"
done
run systemctl daemon-reload
run systemctl try-restart kota-ingest.service kota-indicators.service kota-api.service \
    kota-alerts.service 'kota-alerts-deliver@*.service'

cat <<NEXT

Installed (services running before were restarted; nothing was enabled). Next:
  1. sudo nano $CONFIG_DIR/kota.env        replace every change-me value
  2. sudo nano $CONFIG_DIR/devices.yaml    your devices; Raspberry Pi agent ids in $CONFIG_DIR/agents
  3. sudo $0 --secrets
  4. sudo systemctl enable --now influxdb kota.target
  5. journalctl -u kota-ingest -f          and http://127.0.0.1:8000/
NEXT
