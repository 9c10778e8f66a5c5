#!/usr/bin/env bash
# check-example-configs.sh: starts a real Mosquitto with each example broker
# configuration in examples/mosquitto/ (certacl.conf, per-listener.conf), its
# paths moved into a temporary directory and its listeners onto free ports on
# 127.0.0.1, and connects one device to every listener to prove it works.
#
#   examples/demo/check-example-configs.sh
#
# Environment: CERTACL_PLUGIN  the plugin (default build/plugin/mosquitto_certacl.so)
#              DEMO_DIR        where the demo PKI is (made if missing; default build/demo)
#              MOSQUITTO       the broker (default: mosquitto on PATH or /usr/sbin)
#
# The configurations are used as they are, except for the paths that point
# into /etc, /usr/lib and /var/lib and the listener ports: a mistake in
# them (an option Mosquitto 2.0 does not know, a wrong plugin_opt_*, a
# security setting in the wrong place) stops the broker, and this script
# fails. Exits non-zero on any failure; stops every broker it started.
# shellcheck disable=SC2016  # '$SYS/...' and '$enroll/...' are MQTT topics
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CERTACL_PLUGIN="${CERTACL_PLUGIN:-$ROOT/build/plugin/mosquitto_certacl.so}"
DEMO_DIR="${DEMO_DIR:-$ROOT/build/demo}"
[[ "$CERTACL_PLUGIN" == /* ]] || CERTACL_PLUGIN="$PWD/$CERTACL_PLUGIN"
[[ "$DEMO_DIR" == /* ]] || DEMO_DIR="$PWD/$DEMO_DIR"

die() { printf '==> error: %s\n' "$*" >&2; exit 1; }
[[ -f "$CERTACL_PLUGIN" ]] || die "$CERTACL_PLUGIN is missing: build it first (./dev build)"
if [[ -z "${MOSQUITTO:-}" ]]; then
  MOSQUITTO="$(command -v mosquitto || true)"
  [[ -n "$MOSQUITTO" ]] || MOSQUITTO=/usr/sbin/mosquitto
fi
[[ -x "$MOSQUITTO" ]] || die "the mosquitto broker is not installed"

bash "$ROOT/examples/demo/make-pki.sh" "$DEMO_DIR/pki" >/dev/null
PKI="$DEMO_DIR/pki"

WORK="$(mktemp -d)"
BROKER_PID=""
stop_broker() {
  if [[ -n "$BROKER_PID" ]]; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
  fi
}
trap 'stop_broker; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# /etc/mosquitto/certs, /etc/mosquitto/certacl (with the policies and the
# CA files their `ca` rules name) and /var/lib/mosquitto, in $WORK.
mkdir -p "$WORK/certs" "$WORK/certacl" "$WORK/var"
cp "$PKI/broker.pem" "$PKI/broker.key" "$WORK/certs/"
cat "$PKI/root-ca.pem" "$PKI/issuing-ca.pem" "$PKI/issuing-ca-2.pem" "$PKI/manufacturing-ca.pem" \
  >"$WORK/certs/device-cas.pem"
cat "$PKI/root-ca.pem" "$PKI/issuing-ca.pem" "$PKI/issuing-ca-2.pem" >"$WORK/certs/operational-cas.pem"
cat "$PKI/root-ca.pem" "$PKI/manufacturing-ca.pem" >"$WORK/certs/manufacturing-cas.pem"
cp "$ROOT/examples/policies/smart-meters.toml" "$WORK/certacl/policy.toml"
cp "$ROOT/examples/policies/bootstrap.toml" "$ROOT/examples/mosquitto/monitoring.toml" "$WORK/certacl/"
ln -s "$PKI" "$WORK/certacl/pki"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

failures=0

# adapt CONFIG: the example with its paths in $WORK and its listeners on
# free ports of 127.0.0.1 (PORT[8883] etc. say which), preceded by what
# Debian's /etc/mosquitto/mosquitto.conf sets.
declare -A PORT=()
adapt() {
  local line port
  echo "user $(id -un)"
  echo "persistence true"
  echo "persistence_location $WORK/var/"
  echo "log_dest file $WORK/mosquitto.log"
  echo "log_timestamp false"
  while IFS= read -r line; do
    if [[ "$line" =~ ^listener\ ([0-9]+) ]]; then
      port="${BASH_REMATCH[1]}"
      PORT[$port]="$(free_port)"
      line="listener ${PORT[$port]} 127.0.0.1"
    fi
    line="${line//\/etc\/mosquitto\/certs\//$WORK/certs/}"
    line="${line//\/etc\/mosquitto\/certacl\//$WORK/certacl/}"
    line="${line//\/var\/lib\/mosquitto\//$WORK/var/}"
    line="${line//\/usr\/lib\/x86_64-linux-gnu\/mosquitto_certacl.so/$CERTACL_PLUGIN}"
    printf '%s\n' "$line"
  done <"$1"
}

# A plugin built with sanitizers needs their run-time libraries loaded first.
broker_env=()
runtimes="$(ldd "$CERTACL_PLUGIN" 2>/dev/null | awk '$1 ~ /^lib(asan|tsan|ubsan)\.so/ { print $3 }' | paste -sd :)"
[[ -z "$runtimes" ]] || broker_env=(env "LD_PRELOAD=$runtimes")

start() {  # CONFIG
  : >"$WORK/mosquitto.log"
  "${broker_env[@]}" "$MOSQUITTO" -c "$1" >"$WORK/mosquitto.out" 2>&1 &
  BROKER_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q ' running$' "$WORK/mosquitto.log" && return 0
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "    the broker did not start:"
  sed 's/^/      /' "$WORK/mosquitto.out" "$WORK/mosquitto.log"
  BROKER_PID=""
  return 1
}

# expect_ok "what" PROGRAM PORT CERT ARGS...: the client must succeed.
expect_ok() {
  local what="$1" prog="$2" port="$3" cert="$4" out rc=0
  shift 4
  out="$(timeout 5 "$prog" -h 127.0.0.1 -p "$port" --cafile "$PKI/root-ca.pem" \
    --cert "$PKI/$cert.pem" --key "$PKI/$cert.key" "$@" 2>&1)" || rc=$?
  if ((rc == 0)) && ! grep -qE 'failed|denied|error' <<<"$out"; then
    echo "    ok: $what"
  else
    echo "    FAILED: $what (exit status $rc)"
    printf '%s\n' "$out" | sed 's/^/      /'
    failures=$((failures + 1))
  fi
}

# expect_refused "what" PORT CERT ARGS...: mosquitto_pub must not get through.
expect_refused() {
  local what="$1" port="$2" cert="$3" rc=0
  shift 3
  timeout 5 mosquitto_pub -h 127.0.0.1 -p "$port" --cafile "$PKI/root-ca.pem" \
    --cert "$PKI/$cert.pem" --key "$PKI/$cert.key" "$@" >/dev/null 2>&1 || rc=$?
  if ((rc != 0)); then
    echo "    ok: $what"
  else
    echo "    FAILED: $what: the client got through"
    failures=$((failures + 1))
  fi
}

# --- certacl.conf ---------------------------------------------------------------
echo "==> examples/mosquitto/certacl.conf"
PORT=()
adapt "$ROOT/examples/mosquitto/certacl.conf" >"$WORK/certacl.conf"
if start "$WORK/certacl.conf"; then
  grep -iE '^(certacl: |warning|error)' "$WORK/mosquitto.log" | sed 's/^/    broker: /'
  expect_ok "a meter publishes its reading" mosquitto_pub "${PORT[8883]}" meter-zurich \
    -i m-00000001 -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m 1
  expect_refused "a meter with another meter's client id is refused" "${PORT[8883]}" meter-zurich \
    -i m-00000002 -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m 1
  if [[ -s "$WORK/var/certacl-sessions" ]]; then
    echo "    ok: the state file is written"
  else
    echo "    FAILED: no state file in $WORK/var"
    failures=$((failures + 1))
  fi
  stop_broker
else
  failures=$((failures + 1))
fi

# --- per-listener.conf ------------------------------------------------------------
echo "==> examples/mosquitto/per-listener.conf"
PORT=()
rm -rf "${WORK:?}/var/"*
adapt "$ROOT/examples/mosquitto/per-listener.conf" >"$WORK/per-listener.conf"
if start "$WORK/per-listener.conf"; then
  grep -iE '^(certacl: |warning|error)' "$WORK/mosquitto.log" | sed 's/^/    broker: /'
  expect_ok "operational listener: a meter publishes its reading" mosquitto_pub "${PORT[8883]}" meter-zurich \
    -i m-00000001 -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m 1
  expect_refused "operational listener: a birth certificate fails the TLS handshake" "${PORT[8883]}" sensor-birth \
    -i s-00000099 -V mqttv5 -q 1 -t '$enroll/s-00000099/simpleenroll' -m csr
  expect_ok "bootstrap listener: a new sensor asks for its certificate" mosquitto_pub "${PORT[8884]}" sensor-birth \
    -i s-00000099 -V mqttv5 -q 1 -t '$enroll/s-00000099/simpleenroll' -m csr
  expect_refused "bootstrap listener: an operational certificate fails the TLS handshake" "${PORT[8884]}" meter-zurich \
    -i m-00000001 -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m 1
  expect_ok "monitoring listener: the dashboard reads \$SYS" mosquitto_sub "${PORT[8885]}" dashboard \
    -i ops-dashboard-01 -V mqttv5 -t '$SYS/broker/version' -C 1 -W 5
  expect_refused "monitoring listener: a meter is refused" "${PORT[8885]}" meter-zurich \
    -i m-00000001 -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m 1
  stop_broker
else
  failures=$((failures + 1))
fi

if ((failures > 0)); then
  die "$failures checks failed"
fi
echo "==> both example configurations start and work"
