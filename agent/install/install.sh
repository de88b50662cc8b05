#!/usr/bin/env bash
# Install kota-agent on Raspberry Pi OS (Bookworm or later) as a systemd service.
#
#   sudo agent/install/install.sh [--enable-interfaces] [--source PATH_OR_WHEEL]
#
# Idempotent: running it again upgrades the package and keeps /etc/kota-agent/agent.toml.
#   --enable-interfaces  turn on I2C and the hardware UART (serial console off) with raspi-config
#   --source             what to pip-install (default: this checkout)
set -euo pipefail

PREFIX=/opt/kota-agent
CONFIG_DIR=/etc/kota-agent
SERVICE_USER=kota-agent
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$(cd "$HERE/../.." && pwd)"
ENABLE_INTERFACES=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --enable-interfaces) ENABLE_INTERFACES=1; shift ;;
    --source) SOURCE="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ $EUID -ne 0 ]]; then
  echo "run as root: sudo $0 $*" >&2
  exit 1
fi

echo "==> system packages"
apt-get update -qq
# python3-lgpio: gpiozero's pin library on the Pi 5 and on Bookworm; i2c-tools for i2cdetect.
apt-get install -y -qq python3 python3-venv python3-pip python3-lgpio i2c-tools

if [[ $ENABLE_INTERFACES -eq 1 ]] && command -v raspi-config >/dev/null; then
  echo "==> enabling I2C and the UART (reboot needed)"
  raspi-config nonint do_i2c 0
  raspi-config nonint do_serial_hw 0
  raspi-config nonint do_serial_cons 1
fi

echo "==> user $SERVICE_USER (groups dialout, i2c, gpio)"
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/kota-agent --no-create-home \
          --shell /usr/sbin/nologin "$SERVICE_USER"
fi
for group in dialout i2c gpio; do
  if getent group "$group" >/dev/null; then usermod -aG "$group" "$SERVICE_USER"; fi
done

# [agent] only: the base install plus gpiozero, pyserial and smbus2. The server side (FastAPI,
# uvicorn, the Grafana SDK) is the [server] extra and has no business on a Pi.
echo "==> $PREFIX/venv with kota-cerdas[agent] from $SOURCE"
mkdir -p "$PREFIX"
# System site packages so the apt-installed lgpio is visible to gpiozero.
python3 -m venv --system-site-packages "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet --upgrade "${SOURCE}[agent]"
ln -sf "$PREFIX/venv/bin/kota-agent" /usr/local/bin/kota-agent
if [[ -f "$SOURCE/docs/agent.md" ]]; then
  mkdir -p "$PREFIX/docs" && cp "$SOURCE/docs/agent.md" "$PREFIX/docs/"
fi

echo "==> $CONFIG_DIR"
install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"
if [[ ! -f "$CONFIG_DIR/agent.toml" ]]; then
  "$PREFIX/venv/bin/kota-agent" sample-config > "$CONFIG_DIR/agent.toml"
  chown root:"$SERVICE_USER" "$CONFIG_DIR/agent.toml"
  chmod 0640 "$CONFIG_DIR/agent.toml"
  NEW_CONFIG=1
else
  NEW_CONFIG=0
fi
install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" /var/lib/kota-agent

echo "==> systemd unit"
install -m 0644 "$HERE/kota-agent.service" /etc/systemd/system/kota-agent.service
systemctl daemon-reload

if [[ $NEW_CONFIG -eq 1 ]]; then
  cat <<NEXT

Installed. Next:
  1. sudo nano $CONFIG_DIR/agent.toml     agent id and city, broker, one [[sensor]] per sensor
     (put the MQTT password in $CONFIG_DIR/mqtt.password, mode 0640, group $SERVICE_USER)
  2. kota-agent validate -c $CONFIG_DIR/agent.toml
  3. sudo -u $SERVICE_USER kota-agent check -c $CONFIG_DIR/agent.toml
  4. sudo systemctl enable --now kota-agent && journalctl -u kota-agent -f
NEXT
else
  systemctl try-restart kota-agent.service
  echo "Upgraded; the service was restarted if it was running."
fi
