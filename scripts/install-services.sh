#!/usr/bin/env bash
# Make sure the programs Kota Cerdas runs locally are installed: Mosquitto and InfluxDB 1.x from
# the distribution's packages (Debian, Ubuntu, Raspberry Pi OS). Installs them as root or through
# sudo; otherwise says what to install. Does not start or enable the system services: make demo
# and the tests start their own copies on loopback.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || need+=(influxdb)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
for extra in "$@"; do
  case "$extra" in
    chromium) command -v chromium >/dev/null 2>&1 || need+=(chromium) ;;
    *) need+=("$extra") ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "Kota Cerdas needs these packages: ${need[*]}" >&2
  echo "Install them with:  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing ${need[*]} from the distribution's packages ..." >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# policy-rc.d style: we only want the binaries; a started system service is harmless but unused.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed: ${need[*]}" >&2
