#!/usr/bin/env bash
# The Debian package as an operator meets it, on this machine (as root: it installs it):
# built by scripts/deb and checked by lintian (no warnings or errors); installed with dpkg -i;
# the unit checked by systemd-analyze verify; the installed binary started exactly as the
# unit would start it (as the fleetca user and group, no capabilities, no new privileges,
# UMask 0077, the unit's environment), its first start quiet, and driven with the CLI; a newer
# build installed over it keeps the data and migrates it at the next start; removing and
# purging keep /var/lib/fleetca. Between the two, mosquitto runs as its own user beside it (the
# README's group set-up, the packaged plugin) and refuses a revoked certificate once the plugin
# has made it re-read fleetca's CRL. Any failed check exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '\n--> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root: the test installs the package"

need=()
command -v lintian >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v setpriv >/dev/null || need+=(util-linux)
command -v adduser >/dev/null || need+=(adduser)
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/fleetca-deb.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "${mosquitto_pid:-}" ] && kill "$mosquitto_pid" 2>/dev/null || true
  dpkg --purge fleetca >/dev/null 2>&1 || true
  rm -rf /var/lib/fleetca /etc/mosquitto/fleetca "$work"
  # The machine as it was: no fleetca user or group (the package keeps them on purge).
  if getent passwd fleetca >/dev/null; then deluser --quiet --system fleetca >/dev/null 2>&1 || true; fi
  if getent group fleetca >/dev/null; then delgroup --quiet --system fleetca >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

log "building the package (scripts/deb)"
scripts/deb >/dev/null
first=$(ls -t target/debian/fleetca_*_amd64.deb | head -n 1)

log "lintian $first"
lintian --fail-on error,warning "$first" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error,warning "$first" >/dev/null 2>&1 || fail "lintian found errors or warnings"

log "installing it"
dpkg --purge fleetca >/dev/null 2>&1 || true
rm -rf /var/lib/fleetca
dpkg -i "$first" >/dev/null
getent passwd fleetca >/dev/null || fail "no fleetca user"
getent group fleetca >/dev/null || fail "no fleetca group"
[ "$(stat -c '%U %G %a' /var/lib/fleetca)" = "fleetca fleetca 700" ] || fail "/var/lib/fleetca is $(stat -c '%U %G %a' /var/lib/fleetca)"
[ "$(stat -c '%U %G %a' /etc/fleetca/fleetca.toml)" = "root fleetca 640" ] || fail "the settings file is $(stat -c '%U %G %a' /etc/fleetca/fleetca.toml)"
[ -f /usr/lib/fleetca/libfleetca_mosquitto.so ] || fail "the mosquitto plugin is not installed"
[ -f /usr/share/man/man1/fleetca.1.gz ] || fail "no man page"
[ -f /usr/share/bash-completion/completions/fleetca ] || fail "no bash completion"

log "systemd-analyze verify"
out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/fleetca.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"

# The allocator setting the memory figures of docs/performance.md were measured with.
grep -qx 'Environment=GLIBC_TUNABLES=glibc.malloc.arena_max=2' /usr/lib/systemd/system/fleetca.service \
  || fail "the unit does not hold malloc to two arenas"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
# As the unit starts it: User/Group fleetca, no capabilities (CapabilityBoundingSet= empty),
# NoNewPrivileges, UMask 0077, its Environment= lines; only the port is this test's.
start() {
  setpriv --reuid=fleetca --regid=fleetca --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all \
    env -i PATH=/usr/bin:/bin FLEETCA_CONFIG=/etc/fleetca/fleetca.toml FLEETCA_DATA_DIR=/var/lib/fleetca \
    GLIBC_TUNABLES=glibc.malloc.arena_max=2 \
    FLEETCA_LISTEN="127.0.0.1:$port" sh -c 'umask 0077; exec /usr/bin/fleetca serve' >"$1" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$1"; fail "fleetca stopped while starting"; }
    sleep 0.2
  done
  cat "$1"
  fail "fleetca did not become ready"
}
stop() {
  kill "$pid"
  wait "$pid" || true
  pid=
}
cli() { HOME="$work" FLEETCA_URL="$url" FLEETCA_TOKEN="$(cat /var/lib/fleetca/admin-token)" /usr/bin/fleetca "$@"; }

log "first start, as the fleetca user"
start "$work/first.log"
grep -q 'sea_orm_migration' "$work/first.log" && fail "the first start logs each migration"
grep -q 'database ready: migrations applied' "$work/first.log" || fail "no one-line migration summary"
grep -q 'admin-token' "$work/first.log" || fail "the first start does not say where the admin token is"
info_lines=$(grep -c 'INFO' "$work/first.log" || true)
echo "first start: $info_lines INFO lines"
[ "$info_lines" -le 10 ] || { cat "$work/first.log"; fail "the first start logs $info_lines lines at INFO"; }
[ "$(stat -c '%U %a' /var/lib/fleetca/admin-token)" = "fleetca 600" ] || fail "admin-token is $(stat -c '%U %a' /var/lib/fleetca/admin-token)"

log "driving it with the CLI"
cli keys create deb-svc --enterprise acme >/dev/null
cli certs create --key deb-svc --out "$work/cert" >/dev/null
[ -s "$work/cert/client.crt" ] && [ -s "$work/cert/client.key" ] || fail "no certificate files"
openssl verify -CAfile "$work/cert/ca.crt" -untrusted "$work/cert/client.crt" "$work/cert/client.crt" >/dev/null || fail "openssl does not verify the certificate"
cli keys list | grep -q deb-svc || fail "the key is not listed"
stop

log "mosquitto as its own user, fleetca as fleetca: the README's group set-up, a revoked certificate refused after the reload"
# What an operator does once, as root, beside installing (the README's steps): fleetca's user
# joins mosquitto's group; a folder fleetca writes and mosquitto reads; the settings.
adduser --quiet fleetca mosquitto
install -d -o fleetca -g mosquitto -m 2750 /etc/mosquitto/fleetca
cat >>/etc/fleetca/fleetca.toml <<TOML

crl_file = "/etc/mosquitto/fleetca/crl.pem"
crl_file_group = "mosquitto"

[[brokers]]
kind = "mosquitto-plugin"
name = "mosquitto"
TOML
mqtt_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start "$work/broker.log"
# From here on nothing runs as root but the clients: fleetca's user writes the broker's files.
setpriv --reuid=fleetca --regid=fleetca --init-groups env -i PATH=/usr/bin:/bin \
  FLEETCA_CONFIG=/etc/fleetca/fleetca.toml FLEETCA_DATA_DIR=/var/lib/fleetca \
  /usr/bin/fleetca server-cert --ip 127.0.0.1 --out /etc/mosquitto/fleetca --group mosquitto >/dev/null
[ "$(stat -c '%U %G %a' /etc/mosquitto/fleetca/server.key)" = "fleetca mosquitto 640" ] || fail "server.key is $(stat -c '%U %G %a' /etc/mosquitto/fleetca/server.key)"
[ "$(stat -c '%U %G %a' /etc/mosquitto/fleetca/crl.pem)" = "fleetca mosquitto 640" ] || fail "crl.pem is $(stat -c '%U %G %a' /etc/mosquitto/fleetca/crl.pem)"
conf="$work/mosquitto.conf"
cat >"$conf" <<CONF
per_listener_settings false
allow_anonymous false
log_dest stderr
plugin /usr/lib/fleetca/libfleetca_mosquitto.so
plugin_opt_url $url
plugin_opt_broker mosquitto
plugin_opt_reload_on_crl true
# Certificates are mosquitto's own decision here (CA and CRL): this proves the CRL reload.
plugin_opt_logins password
listener $mqtt_port 127.0.0.1
cafile /etc/mosquitto/fleetca/ca.crt
certfile /etc/mosquitto/fleetca/server.crt
keyfile /etc/mosquitto/fleetca/server.key
require_certificate true
use_identity_as_username true
crlfile /etc/mosquitto/fleetca/crl.pem
CONF
chmod 644 "$conf"
chmod 755 "$work"
setpriv --reuid=mosquitto --regid=mosquitto --init-groups /usr/sbin/mosquitto -c "$conf" >"$work/mosquitto.log" 2>&1 &
mosquitto_pid=$!
for _ in $(seq 50); do grep -q "following fleetca's changes" "$work/mosquitto.log" && break; sleep 0.2; done
grep -q "following fleetca's changes" "$work/mosquitto.log" || { cat "$work/mosquitto.log"; fail "the plugin does not follow fleetca"; }
publish() {
  mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" --cafile /etc/mosquitto/fleetca/ca.crt \
    --cert "$work/$1/client.crt" --key "$work/$1/client.key" -t v4/groups/acme.master/x -m hello -q 1 2>/dev/null
}
cli certs create --key deb-svc --name kept --out "$work/kept" >/dev/null
publish cert || { cat "$work/mosquitto.log"; fail "the certificate is refused before it is revoked"; }
cert_id=$(openssl x509 -in "$work/cert/client.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
cert_id=$(cli certs list --json | python3 -c "import json,sys; print([c['id'] for c in json.load(sys.stdin) if c['serial'].lower().lstrip('0') == '$cert_id'.lstrip('0')][0])")
cli certs revoke "$cert_id" --reason keyCompromise >/dev/null
refused=
for _ in $(seq 25); do
  kill -0 "$mosquitto_pid" 2>/dev/null || { cat "$work/mosquitto.log"; fail "mosquitto died"; }
  if ! publish cert; then refused=1; break; fi
  sleep 0.2
done
[ -n "$refused" ] || { cat "$work/mosquitto.log"; fail "the revoked certificate is still admitted"; }
kill -0 "$mosquitto_pid" 2>/dev/null || { cat "$work/mosquitto.log"; fail "mosquitto died"; }
grep -q "fleetca wrote its CRL file; reloading" "$work/mosquitto.log" || fail "mosquitto was not reloaded by the plugin"
publish kept || { cat "$work/mosquitto.log"; fail "the key's other certificate is refused after the reload"; }
kill "$mosquitto_pid"; wait "$mosquitto_pid" 2>/dev/null || true
mosquitto_pid=
gpasswd -d fleetca mosquitto >/dev/null
stop

log "a newer build over it"
# Make the database one migration older than the build (its newest migration is PostgreSQL's
# alone, a no-op on SQLite), so the upgraded start has one to apply.
python3 - <<'PY'
import sqlite3
db = sqlite3.connect("/var/lib/fleetca/fleetca.db")
db.execute("DELETE FROM seaql_migrations WHERE version = (SELECT MAX(version) FROM seaql_migrations)")
db.commit()
PY
scripts/deb --deb-revision 2 >/dev/null
second=$(ls target/debian/fleetca_*-2_amd64.deb)
dpkg -i "$second" >/dev/null
[ "$(dpkg-query -W -f '${Version}' fleetca)" = "$(basename "$second" | cut -d_ -f2)" ] || fail "the newer build is not installed"
start "$work/second.log"
grep -q 'applied=1' "$work/second.log" || { cat "$work/second.log"; fail "the upgraded start did not migrate"; }
cli keys list | grep -q deb-svc || fail "the key is gone after the upgrade"
[ "$(cli certs list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 1 ] || fail "the certificate is gone after the upgrade"
stop

log "removing and purging"
dpkg -r fleetca >/dev/null
[ ! -e /usr/bin/fleetca ] || fail "the binary is still there"
[ -f /var/lib/fleetca/fleetca.db ] || fail "removing the package removed the data"
purge=$(dpkg --purge fleetca 2>&1)
echo "$purge" | grep -q '/var/lib/fleetca is kept' || fail "purging does not say what it leaves: $purge"
[ -f /var/lib/fleetca/master.key ] || fail "purging removed the data"
echo "the Debian package: all checks passed"
