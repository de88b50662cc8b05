#!/usr/bin/env bash
# Install every program Kota Cerdas runs locally, from the distribution's packages (Debian,
# Ubuntu, Raspberry Pi OS), as root or through sudo; otherwise say what to install. Does not
# start or enable any system service: make demo and the tests start their own copies on loopback.
#
#   scripts/install-services.sh [demo|test|bench|all]   install what that purpose needs (default demo)
#   scripts/install-services.sh --list                  print the table: program, package, purposes
#
# The table below is the single list of programs: tests/deploy/test_install_script.py fails when the
# test suite, the demo or a benchmark runs a program that is not in it, so a fresh machine that
# runs `make test` has everything it needs.
set -euo pipefail

# program          package             purposes (demo: make demo; test: make test; bench: make bench)
PROGRAMS="
mosquitto          mosquitto           demo,test,bench
mosquitto_passwd   mosquitto           demo,test
mosquitto_sub      mosquitto-clients   demo,test
mosquitto_pub      mosquitto-clients   demo,test
influxd            influxdb            demo,test,bench
openssl            openssl             demo,test
curl               curl                demo,test
wrk                wrk                 bench
git                git                 test
chromium           chromium            test
systemd-analyze    systemd             test
initdb             postgresql          test
postgres           postgresql          test
"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

purpose=demo
case "${1:-}" in
  "") ;;
  demo|test|bench|all) purpose="$1" ;;
  --list) echo "$PROGRAMS" | sed '/^$/d'; exit 0 ;;
  -h|--help) usage; exit 0 ;;
  *) echo "install-services.sh: unknown argument '$1' (expected demo, test, bench, all or --list)" >&2
     exit 2 ;;
esac

present() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ] && return 0
  local found  # Debian's postgresql keeps its programs off PATH
  for found in /usr/lib/postgresql/*/bin/"$1"; do [ -x "$found" ] && return 0; done
  return 1
}

need=()
while read -r program package purposes; do
  [ -z "$program" ] && continue
  if [ "$purpose" != all ] && [[ ",$purposes," != *",$purpose,"* ]]; then continue; fi
  present "$program" && continue
  [[ " ${need[*]-} " == *" $package "* ]] || need+=("$package")
done <<< "$PROGRAMS"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "Kota Cerdas ($purpose) needs these packages: ${need[*]}" >&2
  echo "Install them with:  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing ${need[*]} from the distribution's packages ..." >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# Only the binaries are wanted; a started system service is harmless but unused.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed: ${need[*]}" >&2
