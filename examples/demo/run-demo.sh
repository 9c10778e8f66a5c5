#!/usr/bin/env bash
# run-demo.sh: certacl in a real Mosquitto broker, then `certacl explain` on
# more example policies, with what happens said in plain words.
#
#   examples/demo/run-demo.sh          (normally through ./dev demo)
#
# Environment: CERTACL         the certacl CLI (default build/policy/certacl)
#              CERTACL_PLUGIN  the plugin (default build/plugin/mosquitto_certacl.so)
#              DEMO_DIR        where the PKI, the policies and the broker's
#                              files go (default build/demo)
#              MOSQUITTO       the broker (default: mosquitto on PATH or /usr/sbin)
#              CERTACL_ENROLL_BRIDGE  the enroll bridge (default
#                              build/enroll-bridge/certacl-enroll-bridge)
#              CERTACL_DEVICE_RENEW   the example device client (default
#                              build/examples/device-client/certacl-device-renew)
#
# Part 1 starts a Mosquitto broker with the plugin on 127.0.0.1 (free ports,
# a configuration in DEMO_DIR/broker/ written from the demo PKI), connects
# smart meters, head-end systems and a few intruders with mosquitto_pub and
# mosquitto_sub (real TLS client certificates), and shows for each what the
# client saw, what the broker logged, and why (certacl explain). Part 2 asks
# `certacl explain` about factory-zone and sensor-lifecycle devices. Every
# client has a timeout, and everything started is stopped on exit.
#
# Every case states the outcome the policy is meant to give; the script exits
# non-zero if any outcome differs, so the demo doubles as an end-to-end test
# (ctest examples_demo).
#
# shellcheck disable=SC2016  # '$SYS/#', '$enroll/...' are MQTT topics, not expansions
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CERTACL="${CERTACL:-$ROOT/build/policy/certacl}"
CERTACL_PLUGIN="${CERTACL_PLUGIN:-$ROOT/build/plugin/mosquitto_certacl.so}"
CERTACL_ENROLL_BRIDGE="${CERTACL_ENROLL_BRIDGE:-$ROOT/build/enroll-bridge/certacl-enroll-bridge}"
CERTACL_DEVICE_RENEW="${CERTACL_DEVICE_RENEW:-$ROOT/build/examples/device-client/certacl-device-renew}"
DEMO_DIR="${DEMO_DIR:-$ROOT/build/demo}"

die() { printf '==> error: %s\n' "$*" >&2; exit 1; }

[[ -x "$CERTACL" ]] || die "$CERTACL is missing: build it first (./dev build)"
[[ -f "$CERTACL_PLUGIN" ]] || die "$CERTACL_PLUGIN is missing: build it first (./dev build)"
[[ -x "$CERTACL_ENROLL_BRIDGE" ]] || die "$CERTACL_ENROLL_BRIDGE is missing: build it first (./dev build)"
[[ -x "$CERTACL_DEVICE_RENEW" ]] || die "$CERTACL_DEVICE_RENEW is missing: build it first (./dev build)"
if [[ -z "${MOSQUITTO:-}" ]]; then
  MOSQUITTO="$(command -v mosquitto || true)"
  [[ -n "$MOSQUITTO" ]] || MOSQUITTO=/usr/sbin/mosquitto
fi
[[ -x "$MOSQUITTO" ]] || die "the mosquitto broker is not installed (Debian: apt-get install mosquitto)"
for c in mosquitto_pub mosquitto_sub python3 timeout stdbuf; do
  command -v "$c" >/dev/null || die "$c is missing (Debian: mosquitto-clients, python3, coreutils)"
done
# Absolute paths: the script works in DEMO_DIR from here on.
[[ "$CERTACL" == /* ]] || CERTACL="$PWD/$CERTACL"
[[ "$CERTACL_PLUGIN" == /* ]] || CERTACL_PLUGIN="$PWD/$CERTACL_PLUGIN"
[[ "$CERTACL_ENROLL_BRIDGE" == /* ]] || CERTACL_ENROLL_BRIDGE="$PWD/$CERTACL_ENROLL_BRIDGE"
[[ "$CERTACL_DEVICE_RENEW" == /* ]] || CERTACL_DEVICE_RENEW="$PWD/$CERTACL_DEVICE_RENEW"

bash "$ROOT/examples/demo/make-pki.sh" "$DEMO_DIR/pki"
cp "$ROOT"/examples/policies/*.toml "$ROOT/examples/mosquitto/monitoring.toml" "$DEMO_DIR/"
echo "==> example policies copied to $DEMO_DIR"
cd "$DEMO_DIR"

# --- output helpers -------------------------------------------------------------
if [[ -t 1 ]]; then
  GREEN=$'\e[32m' RED=$'\e[31m' YELLOW=$'\e[33m' DIM=$'\e[2m' BOLD=$'\e[1m' OFF=$'\e[0m'
else
  GREEN='' RED='' YELLOW='' DIM='' BOLD='' OFF=''
fi

# Quotes a word for display only if the shell would need it.
shell_word() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@,-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

shell_words() {
  local out="" w
  for w in "$@"; do out+="${out:+ }$(shell_word "$w")"; done
  printf '%s' "$out"
}

indent() { sed 's/^/    /'; }
indent6() { sed 's/^/      /'; }

section() {
  printf '\n%s== %s ==%s\n' "$BOLD" "$1" "$OFF"
  shift
  local line
  for line in "$@"; do printf '%s\n' "$line"; done
}

colour_of() {
  case "$1" in
    ALLOWED) printf '%s' "$GREEN" ;;
    DENIED|REFUSED|TLS) printf '%s' "$RED" ;;
    *) printf '%s' "$YELLOW" ;;
  esac
}

# label TEXT: "    TEXT   " then the rest of the line, continuation lines aligned.
labelled() {  # LABEL TEXT...
  local label="$1"; shift
  local first=1 line
  while IFS= read -r line; do
    if ((first)); then
      printf '    %-9s%s\n' "$label" "$line"
      first=0
    else
      printf '    %-9s%s\n' "" "$line"
    fi
  done <<<"$*"
}

steps=0 cases=0 allowed=0 denied=0 errors=0 unexpected=0
# What the real broker's certacl has decided so far, as the clients saw it
# (compared with its counters at the end of part 1).
n_accepted=0 n_pub_allowed=0 n_pub_denied=0 n_sub_allowed=0 n_sub_denied=0

# tally EXPECTED VERDICT: counts a verdict and flags one that is not expected.
tally() {
  local expected="$1" verdict="$2"
  cases=$((cases + 1))
  case "$verdict" in
    ALLOWED) allowed=$((allowed + 1)) ;;
    DENIED|REFUSED|TLS) denied=$((denied + 1)) ;;
    *) errors=$((errors + 1)) ;;
  esac
  if [[ "$expected" != ANY && "$verdict" != "$expected" ]]; then
    printf '    %s!! expected %s here%s\n' "$YELLOW" "$expected" "$OFF"
    unexpected=$((unexpected + 1))
  fi
}

# The reason from `certacl explain` output: its "decision" line, without the
# verdict and the action it repeats.
decision_of() {
  local line
  line="$(grep -m1 '^decision: ' <<<"$1" || true)"
  if [[ -z "$line" ]]; then
    tail -n 2 <<<"$1"
    return
  fi
  sed -E 's/^decision: (ALLOW|DENY) (connect|publish|subscribe|read)( "([^"\\]|\\.)*")?( \([^)]*\))?: //' <<<"$line"
}

# explain POLICY CERT CLIENT_ID ACTION_ARGS...: sets EXPLAIN_VERDICT
# (ALLOWED/DENIED/ERROR) and EXPLAIN_WHY.
explain() {
  local policy="$1" cert="$2" client_id="$3"
  shift 3
  local out rc=0
  out="$("$CERTACL" explain --policy "$policy" --cert "pki/$cert.pem" --client-id "$client_id" "$@" 2>&1)" || rc=$?
  case "$rc" in
    0) EXPLAIN_VERDICT=ALLOWED ;;
    1) EXPLAIN_VERDICT=DENIED ;;
    *) EXPLAIN_VERDICT=ERROR ;;
  esac
  EXPLAIN_WHY="$(decision_of "$out")"
  EXPLAIN_OUT="$out"
}

# explain_detail ACTION (publish or subscribe): after explain, what the rule
# that decided means for this certificate, from the "resolved filters" of the
# explanation: its template filled in with the device's values, or, when no
# rule applies, what the device may do instead (and which rules are void).
explain_detail() {
  local action="$1" ref template lines filters void
  ref="$(grep -oE "^(role|deny) '[^']*' \(#[0-9]+\) (publish|subscribe)\[[0-9]+\]" <<<"$EXPLAIN_WHY" || true)"
  if [[ -n "$ref" ]]; then
    template="$(grep -oE '"[^"]*"$' <<<"$EXPLAIN_WHY" | tr -d '"' || true)"
    lines="$(grep -F "($ref" <<<"$EXPLAIN_OUT" || true)"
    [[ -n "$lines" ]] || return 0
    filters="$(awk '{ print $3 }' <<<"$lines" | paste -sd ' ' | sed 's/ /, /g')"
    [[ "$filters" != "$template" ]] || return 0
    printf 'which for this certificate is %s\n' "$filters"
  elif [[ "$EXPLAIN_WHY" == "no rule: default deny"* ]]; then
    filters="$(grep -E "^  allow $action " <<<"$EXPLAIN_OUT" | awk '{ print $3 }' | paste -sd ' ' | sed 's/ /, /g')"
    if [[ -n "$filters" ]]; then
      printf 'this certificate may %s only: %s\n' "$action" "$filters"
    else
      printf 'this certificate may %s nothing at all\n' "$action"
    fi
    void="$(grep -m1 -oE 'is void for this device: .*' <<<"$EXPLAIN_OUT" | sed 's/^is void for this device: //' || true)"
    [[ -z "$void" ]] || printf 'rules void for this certificate: %s\n' "$void"
  fi
}

# ==================================================================================
# Part 1: a real broker
# ==================================================================================

RUN="$DEMO_DIR/broker"
LOG="$RUN/mosquitto.log"
BROKER_PID=""
BACKGROUND_PIDS=()

cleanup() {
  local pid
  for pid in "${BACKGROUND_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  for pid in "${BACKGROUND_PIDS[@]}" ${BROKER_PID:+"$BROKER_PID"}; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two free TCP ports on 127.0.0.1 (the kernel picks them).
read -r METERS_PORT MONITORING_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

rm -rf "$RUN"
mkdir -p "$RUN"
# The CAs the listeners trust: the root and the issuing CAs of device
# certificates (not the impostor CA).
cat pki/root-ca.pem pki/issuing-ca.pem pki/issuing-ca-2.pem pki/manufacturing-ca.pem >"$RUN/device-cas.pem"

# The layout of examples/mosquitto/per-listener.conf, on 127.0.0.1 and with
# the demo's files: a listener for the meters (smart-meters.toml) and one for
# the operators' dashboards (monitoring.toml).
listener_conf() {  # PORT POLICY NAME
  cat <<EOF

listener $1 127.0.0.1
tls_version tlsv1.2
cafile $RUN/device-cas.pem
certfile $DEMO_DIR/pki/broker.pem
keyfile $DEMO_DIR/pki/broker.key
require_certificate true
use_identity_as_username false
use_subject_as_username false
allow_anonymous false
allow_zero_length_clientid false
plugin $CERTACL_PLUGIN
plugin_opt_policy $DEMO_DIR/$2
plugin_opt_name $3
plugin_opt_sys_interval 1
plugin_opt_log_refusals_per_minute 1000
plugin_opt_state_file $RUN/certacl-sessions-$3
EOF
}
{
  echo "# The demo broker, written by examples/demo/run-demo.sh. The production"
  echo "# version of this layout is examples/mosquitto/per-listener.conf."
  echo "# Runs as the user who started the demo, who can read the demo's keys."
  echo "user $(id -un)"
  echo "persistence false"
  echo "log_dest file $LOG"
  echo "log_type error"
  echo "log_type warning"
  echo "log_type notice"
  echo "log_type information"
  echo "log_timestamp false"
  echo "per_listener_settings true"
  listener_conf "$METERS_PORT" smart-meters.toml meters
  listener_conf "$MONITORING_PORT" monitoring.toml monitoring
} >"$RUN/mosquitto.conf"

broker_version="$("$MOSQUITTO" -h 2>&1 || true)"
broker_version="${broker_version%%$'\n'*}"
section "Part 1: certacl in a real Mosquitto broker" \
  "Starting ${broker_version:-mosquitto} with the certacl plugin:" \
  "  127.0.0.1:$METERS_PORT  the meters' listener, policy smart-meters.toml" \
  "  127.0.0.1:$MONITORING_PORT  the operators' listener, policy monitoring.toml (reads \$SYS only)" \
  "Both require TLS 1.2+ and a client certificate from the demo CAs; certacl then" \
  "decides who the device is and what it may do. Configuration and log:" \
  "  $RUN/mosquitto.conf" \
  "  $LOG"

# A plugin built with sanitizers (./dev sanitize) needs their run-time
# libraries loaded first into the broker, which is not built with them.
broker_env=()
runtimes="$(ldd "$CERTACL_PLUGIN" 2>/dev/null | awk '$1 ~ /^lib(asan|tsan|ubsan)\.so/ { print $3 }' | paste -sd :)"
[[ -z "$runtimes" ]] || broker_env=(env "LD_PRELOAD=$runtimes")
"${broker_env[@]}" "$MOSQUITTO" -c "$RUN/mosquitto.conf" >"$RUN/mosquitto.out" 2>&1 &
BROKER_PID=$!
started=0
for ((i = 0; i < 100; i++)); do
  if grep -q ' running$' "$LOG" 2>/dev/null; then
    started=1
    break
  fi
  kill -0 "$BROKER_PID" 2>/dev/null || break
  sleep 0.1
done
if ((!started)); then
  echo "==> the broker did not start. Its output:" >&2
  cat "$RUN/mosquitto.out" "$LOG" 2>/dev/null | indent >&2
  exit 1
fi
echo
echo "The broker's log at start-up:"
grep -E '^(certacl: |Loading plugin|Opening ipv4)' "$LOG" | indent

printf '\nIn the commands below, %s[TLS as NAME]%s stands for\n' "$BOLD" "$OFF"
echo "  -h 127.0.0.1 -p PORT --cafile pki/root-ca.pem --cert pki/NAME.pem --key pki/NAME.key"
echo "(run from $DEMO_DIR): the device's certificate is its only credential."

# tls_args PORT CERT: the connection options of a client using pki/CERT.pem
# ("-" for none).
tls_args() {
  TLS=(-h 127.0.0.1 -p "$1" --cafile pki/root-ca.pem)
  [[ "$2" == - ]] || TLS+=(--cert "pki/$2.pem" --key "pki/$2.key")
}

shown_command() {  # PROGRAM CERT ARGS...
  local prog="$1" cert="$2"
  shift 2
  if [[ "$cert" == - ]]; then
    printf '%s$ %s [TLS without a certificate] %s%s\n' "$DIM" "$prog" "$(shell_words "$@")" "$OFF"
  else
    printf '%s$ %s [TLS as %s] %s%s\n' "$DIM" "$prog" "$cert" "$(shell_words "$@")" "$OFF"
  fi
}

# run_client PROGRAM PORT CERT ARGS...: runs a client (5 s at most). Sets
# CLIENT_OUT, CLIENT_RC and BROKER_OUT (what certacl and OpenSSL logged
# meanwhile).
run_client() {
  local prog="$1" port="$2" cert="$3"
  shift 3
  tls_args "$port" "$cert"
  local mark
  mark="$(wc -l <"$LOG")"
  CLIENT_RC=0
  CLIENT_OUT="$(timeout 5 "$prog" "${TLS[@]}" "$@" 2>&1)" || CLIENT_RC=$?
  BROKER_OUT="$(tail -n +"$((mark + 1))" "$LOG" | grep -E '^(certacl: |OpenSSL Error)' || true)"
  # A client that failed may be faster than the broker's log line about it
  # (a loaded machine, a sanitizer build): give the broker up to 2 s.
  local i
  for ((i = 0; i < 20 && CLIENT_RC != 0; i++)); do
    [[ -z "$BROKER_OUT" ]] || break
    sleep 0.1
    BROKER_OUT="$(tail -n +"$((mark + 1))" "$LOG" | grep -E '^(certacl: |OpenSSL Error)' || true)"
  done
}

case_header() {  # WHAT
  steps=$((steps + 1))
  printf '\n%2d. %s\n' "$steps" "$1"
}

show_outcome() {  # VERDICT TEXT
  local shown="$1"
  [[ "$shown" != TLS ]] || shown=REFUSED
  printf '    %s%-8s%s %s\n' "$(colour_of "$1")" "$shown" "$OFF" "$2"
}

show_client_and_broker() {
  local client_lines
  client_lines="$(grep -vE '^Client |^Subscribed \(mid' <<<"$CLIENT_OUT" || true)"
  [[ -z "$client_lines" ]] || labelled "client:" "$client_lines"
  [[ -z "$BROKER_OUT" ]] || labelled "broker:" "$BROKER_OUT"
}

# The TLS layer's verdict when the handshake fails, before certacl is asked.
readonly TLS_WHY="the TLS handshake failed: the listener requires a client certificate from a CA in its cafile (require_certificate true); certacl never sees this client"

# publish_case EXPECTED CERT CLIENT_ID "what happens" CLIENT_ARGS...
#   EXPECTED: ALLOWED, DENIED (publish refused), REFUSED (connection refused
#   by certacl) or TLS (handshake failed). CLIENT_ARGS are mosquitto_pub's
#   (-t TOPIC -m MESSAGE -q QOS -r -V mqttv5 ...).
publish_case() {
  local expected="$1" cert="$2" id="$3" what="$4"
  shift 4
  local topic="" qos=0 retain=() i args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      -t) topic="${args[i + 1]}" ;;
      -q) qos="${args[i + 1]}" ;;
      -r) retain=(--retain) ;;
    esac
  done
  case_header "$what"
  shown_command mosquitto_pub "$cert" -i "$id" "$@" | indent
  run_client mosquitto_pub "$METERS_PORT" "$cert" -i "$id" "$@"

  local verdict text
  if grep -q '^OpenSSL Error' <<<"$BROKER_OUT"; then
    verdict=TLS text="the broker closed the connection during the TLS handshake"
  elif grep -qE '^Connection error' <<<"$CLIENT_OUT"; then
    verdict=REFUSED text="the broker refused the connection (CONNACK \"not authorized\"); nothing was published"
  elif grep -q 'failed: Not authorized' <<<"$CLIENT_OUT"; then
    verdict=DENIED text="the broker answered \"Not authorized\" (MQTT 5 reason code 0x87) and passed the message to no one"
  elif grep -qF "certacl: denied publish to '$topic'" <<<"$BROKER_OUT"; then
    verdict=DENIED text="the broker dropped the message (an MQTT 3.1.1 client is not told: only the broker's log shows it)"
  elif ((CLIENT_RC == 0)); then
    verdict=ALLOWED text="the broker accepted the message and passes it to every subscriber allowed to receive it"
  else
    verdict=ERROR text="mosquitto_pub failed (exit status $CLIENT_RC)"
  fi
  show_outcome "$verdict" "$text"
  show_client_and_broker
  case "$verdict" in
    ALLOWED) n_accepted=$((n_accepted + 1)) n_pub_allowed=$((n_pub_allowed + 1)) ;;
    DENIED) n_accepted=$((n_accepted + 1)) n_pub_denied=$((n_pub_denied + 1)) ;;
  esac

  if [[ "$verdict" == TLS || "$expected" == TLS ]]; then
    labelled "why:" "$TLS_WHY"
  elif [[ "$verdict" == REFUSED || "$expected" == REFUSED ]]; then
    explain smart-meters.toml "$cert" "$id" --connect
    labelled "why:" "certacl explain says: $EXPLAIN_WHY"
    [[ "$EXPLAIN_VERDICT" == DENIED ]] || { labelled "" "${YELLOW}!! certacl explain allows this connect${OFF}"; unexpected=$((unexpected + 1)); }
  else
    explain smart-meters.toml "$cert" "$id" --publish "$topic" --qos "$qos" "${retain[@]}"
    local detail
    detail="$(explain_detail publish)"
    labelled "why:" "certacl explain says: $EXPLAIN_WHY${detail:+$'\n'$detail}"
    local want=DENIED
    [[ "$expected" == ALLOWED ]] && want=ALLOWED
    [[ "$EXPLAIN_VERDICT" == "$want" ]] || { labelled "" "${YELLOW}!! certacl explain says $EXPLAIN_VERDICT${OFF}"; unexpected=$((unexpected + 1)); }
  fi
  tally "$expected" "$verdict"
}

# The outcome of one filter from a SUBACK code (MQTT 5: 0x87 = 135 not
# authorized; MQTT 3.1.1: 0x80 = 128 failure).
suback_text() {
  case "$1" in
    0|1|2) printf 'granted (QoS %s)' "$1" ;;
    128) printf 'refused: SUBACK 0x80 (MQTT 3.1.1 "failure")' ;;
    135) printf 'refused: SUBACK 0x87 "Not authorized"' ;;
    *) printf 'SUBACK code %s' "$1" ;;
  esac
}

# report_suback CERT CLIENT_ID OUTPUT EXPECTED FILTER [EXPECTED FILTER...]:
# one line per filter from the "Subscribed (mid: N): c1, c2" line of
# mosquitto_sub -d, with certacl explain's reason.
report_suback() {
  local cert="$1" id="$2" out="$3"
  shift 3
  local codes_line codes=()
  codes_line="$(grep -m1 '^Subscribed (mid' <<<"$out" | sed 's/^Subscribed (mid: [0-9]*): //' || true)"
  [[ -z "$codes_line" ]] || n_accepted=$((n_accepted + 1))
  IFS=', ' read -r -a codes <<<"$codes_line"
  local n=0 expected filter code verdict
  while (($# >= 2)); do
    expected="$1" filter="$2"
    shift 2
    code="${codes[n]:-}"
    n=$((n + 1))
    if [[ -z "$code" ]]; then
      verdict=ERROR
    elif ((code < 128)); then
      verdict=ALLOWED n_sub_allowed=$((n_sub_allowed + 1))
    else
      verdict=DENIED n_sub_denied=$((n_sub_denied + 1))
    fi
    local text="no SUBACK received"
    [[ -z "$code" ]] || text="$(suback_text "$code")"
    printf '    %s%-8s%s %s  %s\n' "$(colour_of "$verdict")" "$verdict" "$OFF" "$filter" "$text"
    explain smart-meters.toml "$cert" "$id" --subscribe "$filter"
    printf '    %-9s%s\n' "" "why: $EXPLAIN_WHY"
    explain_detail subscribe | sed 's/^/                 /'
    [[ "$EXPLAIN_VERDICT" == "$expected" ]] || { labelled "" "${YELLOW}!! certacl explain says $EXPLAIN_VERDICT${OFF}"; unexpected=$((unexpected + 1)); }
    tally "$expected" "$verdict"
  done
}

# subscribe_case CERT CLIENT_ID "what happens" "CLIENT OPTIONS" EXPECTED FILTER...:
# subscribes, shows the SUBACK and disconnects (mosquitto_sub -E).
subscribe_case() {
  local cert="$1" id="$2" what="$3" opts
  read -r -a opts <<<"$4"
  shift 4
  local args=(-i "$id" "${opts[@]}" -d -E) i
  for ((i = 2; i <= $#; i += 2)); do args+=(-t "${!i}"); done
  case_header "$what"
  shown_command mosquitto_sub "$cert" "${args[@]}" | indent
  run_client mosquitto_sub "$METERS_PORT" "$cert" "${args[@]}"
  report_suback "$cert" "$id" "$CLIENT_OUT" "$@"
  [[ -z "$BROKER_OUT" ]] || labelled "broker:" "$BROKER_OUT"
}

# listen NAME CERT CLIENT_ID "what happens" "CLIENT OPTIONS" EXPECTED FILTER...:
# a subscriber that stays connected in the background (60 s at most, stopped
# at the end of part 1); what it receives goes to $RUN/NAME.out.
listen() {
  local name="$1" cert="$2" id="$3" what="$4" opts
  read -r -a opts <<<"$5"
  shift 5
  local args=(-i "$id" "${opts[@]}" -d -F 'RECEIVED %t %p' -W 60) i
  for ((i = 2; i <= $#; i += 2)); do args+=(-t "${!i}"); done
  case_header "$what"
  shown_command mosquitto_sub "$cert" "${args[@]}" | indent
  tls_args "$METERS_PORT" "$cert"
  local mark
  mark="$(wc -l <"$LOG")"
  # Line-buffered, so that the SUBACK can be read while it runs.
  stdbuf -oL mosquitto_sub "${TLS[@]}" "${args[@]}" >"$RUN/$name.out" 2>&1 &
  BACKGROUND_PIDS+=($!)
  for ((i = 0; i < 50; i++)); do
    grep -q '^Subscribed (mid' "$RUN/$name.out" && break
    sleep 0.1
  done
  report_suback "$cert" "$id" "$(cat "$RUN/$name.out")" "$@"
  BROKER_OUT="$(tail -n +"$((mark + 1))" "$LOG" | grep -E '^certacl: ' || true)"
  [[ -z "$BROKER_OUT" ]] || labelled "broker:" "$BROKER_OUT"
  printf '    %s(stays connected, listening)%s\n' "$DIM" "$OFF"
}

# received NAME "who" EXPECTED_LINE...: compares what a background subscriber
# received ("TOPIC MESSAGE" lines) with what it should have, in any order.
received() {
  local name="$1" who="$2"
  shift 2
  local got want
  got="$(sed -n 's/^RECEIVED //p' "$RUN/$name.out" | sort)"
  want="$(printf '%s\n' "$@" | sort)"
  printf '\n  %s received:\n' "$who"
  if [[ -n "$got" ]]; then
    indent6 <<<"$got"
  else
    echo "      nothing"
  fi
  if [[ "$got" == "$want" ]]; then
    printf '    %sas the policy intends%s\n' "$GREEN" "$OFF"
  else
    printf '    %s!! expected exactly:%s\n' "$YELLOW" "$OFF"
    indent6 <<<"$want"
    unexpected=$((unexpected + 1))
  fi
}

# --- the meters' listener ---------------------------------------------------------
section "Smart meters and their head-end (listener $METERS_PORT, smart-meters.toml)" \
  "Meter m-00000001 is in Zurich, m-00000002 in Geneva; each must use its CN as" \
  "client id and may publish only under meters/<its city>/<its CN>/. The head-end" \
  "(headend-01 reads, headend-02 sends) is recognised by the DNS name in its" \
  "certificate. First two subscribers connect and stay connected."

listen headend headend-01 headend-01 \
  "The head-end subscribes to every meter's readings and alarms, and to every meter's commands (MQTT 5)." \
  "-V mqttv5 -q 1" \
  ALLOWED 'meters/+/+/reading' ALLOWED 'meters/+/+/alarm' DENIED 'meters/+/+/cmd/#'
listen geneva meter-geneva m-00000002 \
  "The Geneva meter subscribes to its own commands, to fleet announcements, and to the Zurich meter's commands (MQTT 3.1.1)." \
  "-q 1" \
  ALLOWED 'meters/geneva/m-00000002/cmd/#' ALLOWED 'meters/broadcast/#' DENIED 'meters/zurich/m-00000001/cmd/#'

section "What the meters try"
publish_case ALLOWED meter-zurich m-00000001 \
  "The Zurich meter publishes its reading (QoS 1)." \
  -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m '231.7 kWh'
publish_case DENIED meter-zurich m-00000001 \
  "The Zurich meter publishes a reading in the Geneva meter's name." \
  -V mqttv5 -q 1 -t meters/geneva/m-00000002/reading -m '0.0 kWh'
publish_case DENIED meter-zurich m-00000001 \
  "The Zurich meter publishes its reading as a retained message (readings must never be retained)." \
  -V mqttv5 -q 1 -r -t meters/zurich/m-00000001/reading -m '231.8 kWh'
publish_case ALLOWED meter-zurich m-00000001 \
  "The Zurich meter raises a tamper alarm at QoS 2 (allowed for alarms only)." \
  -V mqttv5 -q 2 -t meters/zurich/m-00000001/alarm -m 'tamper'
publish_case DENIED meter-zurich m-00000001 \
  "The Zurich meter sends the Geneva meter a disconnect command." \
  -V mqttv5 -q 1 -t meters/geneva/m-00000002/cmd/disconnect -m 'now'
publish_case DENIED meter-zurich m-00000001 \
  "The same with MQTT 3.1.1, which has no way to tell a publisher no." \
  -q 1 -t meters/geneva/m-00000002/cmd/disconnect -m 'now'
subscribe_case meter-zurich m-00000001 \
  "The Zurich meter subscribes to '#', i.e. to everything on the broker." \
  "-V mqttv5 -q 1" DENIED '#'
publish_case REFUSED meter-zurich m-00000002 \
  "The Zurich meter connects with the Geneva meter's client id (which would take over the Geneva meter's session)." \
  -V mqttv5 -q 1 -t meters/geneva/m-00000002/reading -m '0.0 kWh'

section "What the head-end sends"
publish_case ALLOWED headend-02 headend-02 \
  "The head-end switches the Geneva meter to the night tariff." \
  -V mqttv5 -q 1 -t meters/geneva/m-00000002/cmd/tariff -m 'night'
publish_case ALLOWED headend-02 headend-02 \
  "The head-end sends the Zurich meter a command (the Geneva meter asked for those and was refused)." \
  -V mqttv5 -q 1 -t meters/zurich/m-00000001/cmd/tariff -m 'day'
publish_case ALLOWED headend-02 headend-02 \
  "The head-end announces the new tariff table to all meters (retained, so meters that connect later get it too)." \
  -V mqttv5 -q 1 -r -t meters/broadcast/tariff -m 'day 0.27 CHF/kWh, night 0.19 CHF/kWh'


section "Intruders and mistakes"
publish_case REFUSED plc-cell1 plc-01 \
  "A PLC from the factory, with a valid certificate from the same CA, connects to the meters' listener." \
  -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m '0.0 kWh'
publish_case DENIED meter-hostile 'm-0000/#' \
  "A meter certificate with the CN 'm-0000/#' connects (it matches the meter role, but every rule that would put its CN into a topic is void) and publishes a reading in the name of a real Zurich meter." \
  -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m '0.0 kWh'
subscribe_case meter-hostile 'm-0000/#' \
  "The same meter subscribes to what a naive template would have granted it." \
  "-V mqttv5 -q 1" DENIED 'meters/zurich/m-0000/#'
publish_case TLS - m-00000003 \
  "A client without a certificate." \
  -V mqttv5 -q 1 -t meters/zurich/m-00000003/reading -m '1.0 kWh'
publish_case TLS sensor-impostor s-00000066 \
  "A device whose certificate comes from a CA this listener does not trust." \
  -V mqttv5 -q 1 -t sensors/s-00000066/data -m '1'

# --- what was delivered -------------------------------------------------------------
sleep 0.5  # the last deliveries to the background subscribers
section "What the subscribers received" \
  "Only what the policy lets each of them receive; every denied publish reached no one."
received headend "The head-end (headend-01)" \
  "meters/zurich/m-00000001/reading 231.7 kWh" \
  "meters/zurich/m-00000001/alarm tamper"
received geneva "The Geneva meter (m-00000002)" \
  "meters/geneva/m-00000002/cmd/tariff night" \
  "meters/broadcast/tariff day 0.27 CHF/kWh, night 0.19 CHF/kWh"
echo
echo "  The Geneva meter stayed connected through the Zurich meter's attempt to take"
echo "  over its client id (it received the tariff sent after it), and got none of"
echo "  the Zurich meter's commands: its subscription to them was refused."
for pid in "${BACKGROUND_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
BACKGROUND_PIDS=()

# --- the counters -------------------------------------------------------------------
# What certacl must have counted on the meters' listener so far, from the
# cases above: connections accepted and refused, ACL decisions.
count_of() { grep -c "$1" <<<"$2" || true; }
snapshot_log="$(grep '^certacl: ' "$LOG")"
want_refused_mismatch="$(count_of ": client-id-mismatch \[" "$snapshot_log")"
want_refused_norole="$(count_of ": no-role \[" "$snapshot_log")"
want_accepted=$n_accepted want_pub_allowed=$n_pub_allowed want_pub_denied=$n_pub_denied
want_sub_allowed=$n_sub_allowed want_sub_denied=$n_sub_denied

section "What the operators see (listener $MONITORING_PORT, monitoring.toml)" \
  "certacl counts its decisions and publishes the counts, retained, under" \
  "\$SYS/broker/certacl/<plugin_opt_name>/ every plugin_opt_sys_interval seconds" \
  "(1 s here). With per_listener_settings true, Mosquitto 2.0 gives plugins no" \
  "timer: a listener's counts go out on its next event, here one more publish a" \
  "second later."
sleep 1.2
publish_case ALLOWED meter-zurich m-00000001 \
  "The Zurich meter publishes its status, retained (so a dashboard opened later sees it)." \
  -V mqttv5 -q 1 -r -t meters/zurich/m-00000001/status -m 'ok'

case_header "The operators' dashboard (O=Acme, OU=operations) reads the meters' listener's counters."
dash_args=(-i ops-dashboard-01 -V mqttv5 -t '$SYS/broker/certacl/meters/#' -F '%t %p' --retained-only -W 1)
shown_command mosquitto_sub dashboard "${dash_args[@]}" | indent
run_client mosquitto_sub "$MONITORING_PORT" dashboard "${dash_args[@]}"
declare -A counter=()
while read -r topic value; do
  [[ "$topic" == '$SYS/broker/certacl/meters/'* ]] || continue
  counter["${topic#'$SYS/broker/certacl/meters/'}"]="$value"
done <<<"$CLIENT_OUT"
if ((${#counter[@]} == 0)); then
  show_outcome ERROR "no counters received"
  show_client_and_broker
  errors=$((errors + 1))
fi

meaning() {
  case "$1" in
    connections/accepted) echo "connections certacl let in" ;;
    connections/refused/*) echo "connections refused: ${1#connections/refused/}" ;;
    acl/publish/allowed) echo "publishes allowed" ;;
    acl/publish/denied) echo "publishes denied (and dropped)" ;;
    acl/subscribe/allowed) echo "subscriptions granted (one per filter)" ;;
    acl/subscribe/denied) echo "subscriptions refused (one per filter)" ;;
    acl/read/allowed) echo "deliveries to subscribers allowed" ;;
    acl/read/denied) echo "deliveries to subscribers withheld" ;;
    sessions/connected) echo "devices connected at that moment" ;;
    sessions/offline) echo "sessions kept for devices now offline (persistent or MQTT 5)" ;;
    policy/reloads) echo "policy reloads (SIGHUP)" ;;
    policy/reload-failures) echo "reloads rejected: the old policy stayed in force" ;;
    *) echo "" ;;
  esac
}

# check_counter NAME WANT [WANT_ALT]: the published value must be WANT (or
# WANT_ALT: a count that the last event may or may not be part of yet).
checked_counters=0
check_counter() {
  local name="$1" want="$2" alt="${3:-$2}" got="${counter[$1]:-}"
  checked_counters=$((checked_counters + 1))
  if [[ "$got" != "$want" && "$got" != "$alt" ]]; then
    printf '    %s!! %s is %s, expected %s%s\n' "$YELLOW" "$name" "${got:-missing}" \
      "$want$([[ "$alt" != "$want" ]] && printf ' or %s' "$alt")" "$OFF"
    unexpected=$((unexpected + 1))
  fi
}

if ((${#counter[@]} > 0)); then
  printf '    %-42s %6s  %s\n' '$SYS/broker/certacl/meters/...' "" ""
  zero_reasons=0
  while IFS= read -r name; do
    if [[ "$name" == connections/refused/* && "${counter[$name]}" == 0 ]]; then
      zero_reasons=$((zero_reasons + 1))
      continue
    fi
    printf '    %-42s %6s  %s\n' "$name" "${counter[$name]}" "$(meaning "$name")"
  done < <(printf '%s\n' "${!counter[@]}" | sort)
  if ((zero_reasons > 0)); then
    printf '    %-42s %6s  %s\n' "connections/refused/..." 0 "($zero_reasons other reasons)"
  fi
  unexpected_before=$unexpected
  # Every case before the status publish above is counted; that last one
  # may or may not be yet.
  check_counter connections/refused/client-id-mismatch "$want_refused_mismatch"
  check_counter connections/refused/no-role "$want_refused_norole"
  check_counter connections/accepted "$want_accepted" "$((want_accepted + 1))"
  check_counter acl/publish/allowed "$want_pub_allowed" "$((want_pub_allowed + 1))"
  check_counter acl/publish/denied "$want_pub_denied"
  check_counter acl/subscribe/allowed "$want_sub_allowed"
  check_counter acl/subscribe/denied "$want_sub_denied"
  # Four deliveries: two to the head-end, two to the Geneva meter.
  check_counter acl/read/allowed 4
  check_counter acl/read/denied 0
  check_counter policy/reloads 0
  check_counter policy/reload-failures 0
  if ((unexpected == unexpected_before)); then
    printf '    %sthe counts agree with what the clients saw above (the status publish goes\n' "$GREEN"
    printf '    out with the next batch)%s\n' "$OFF"
  fi
fi

# --- certificate renewal ----------------------------------------------------------
section "Certificate renewal over MQTT (certacl-enroll-bridge, local CA)" \
  "The Zurich meter renews its certificate over the connection it already has:" \
  "a new key, a CSR with the names of its current certificate, sent on" \
  "\$enroll/m-00000001/simplereenroll. certacl stamps the request with the" \
  "certificate the meter connected with; the bridge checks the CSR against it," \
  "signs with the issuing CA's key (the embedded local CA) and answers on" \
  "\$enroll/m-00000001/simplereenroll/accepted. The meter then connects with the" \
  "new certificate. (Production: [backend] kind = \"est\", docs/enroll.md.)"
cat >"$RUN/bridge.toml" <<EOF
# certacl-enroll-bridge for the demo (docs/enroll.md has every key).
[mqtt]
host = "127.0.0.1"
port = $METERS_PORT
cafile = "$DEMO_DIR/pki/root-ca.pem"
certfile = "$DEMO_DIR/pki/enroll-bridge.pem"
keyfile = "$DEMO_DIR/pki/enroll-bridge.key"
prefix = "\$enroll"
[backend]
kind = "local-ca"
[local_ca]
certfile = "$DEMO_DIR/pki/issuing-ca.pem"
keyfile = "$DEMO_DIR/pki/issuing-ca.key"
days = 365
EOF
"$CERTACL_ENROLL_BRIDGE" --config "$RUN/bridge.toml" >"$RUN/bridge.log" 2>&1 &
BRIDGE_PID=$!
BACKGROUND_PIDS+=("$BRIDGE_PID")
ready=0
for ((i = 0; i < 100; i++)); do
  if grep -q 'ready: subscribed' "$RUN/bridge.log" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$BRIDGE_PID" 2>/dev/null || break
  sleep 0.1
done
echo
printf '%s$ certacl-enroll-bridge --config %s%s\n' "$DIM" "$RUN/bridge.toml" "$OFF"
sed 's/^[0-9TZ:-]* //' "$RUN/bridge.log" | indent
case_header "The Zurich meter renews its certificate (examples/device-client, MQTT 5)."
# A copy of the meter's pair: the demo PKI stays as it is for the next run.
cp pki/meter-zurich.pem pki/meter-zurich-renewed.pem
install -m 0600 pki/meter-zurich.key pki/meter-zurich-renewed.key
old_serial="$(openssl x509 -in pki/meter-zurich-renewed.pem -noout -serial)"
printf '    %s$ certacl-device-renew --host 127.0.0.1 --port %s --cafile pki/root-ca.pem --cert pki/meter-zurich-renewed.pem --key pki/meter-zurich-renewed.key --mode now%s\n' \
  "$DIM" "$METERS_PORT" "$OFF"
renew_rc=0
if ((ready)); then
  timeout 60 "$CERTACL_DEVICE_RENEW" --host 127.0.0.1 --port "$METERS_PORT" --cafile pki/root-ca.pem \
    --cert pki/meter-zurich-renewed.pem --key pki/meter-zurich-renewed.key --mode now \
    >"$RUN/renew.out" 2>&1 || renew_rc=$?
else
  echo "the bridge did not become ready (its log: $RUN/bridge.log)" >"$RUN/renew.out"
  renew_rc=1
fi
indent <"$RUN/renew.out"
new_serial="$(openssl x509 -in pki/meter-zurich-renewed.pem -noout -serial)"
if ((renew_rc == 0)) && [[ "$old_serial" != "$new_serial" ]]; then
  show_outcome ALLOWED "renewed: ${old_serial#serial=} -> ${new_serial#serial=}, same subject"
  tally ALLOWED ALLOWED
else
  show_outcome ERROR "the renewal failed (exit $renew_rc); the bridge's log: $RUN/bridge.log"
  tally ALLOWED ERROR
fi
echo "    The bridge's log line for it:"
grep 'outcome=' "$RUN/bridge.log" | sed 's/^[0-9TZ:-]* //' | indent
publish_case ALLOWED meter-zurich-renewed m-00000001 \
  "The Zurich meter connects with its new certificate and publishes its reading: same identity, same rights." \
  -V mqttv5 -q 1 -t meters/zurich/m-00000001/reading -m '231.9 kWh'
publish_case DENIED meter-zurich-renewed m-00000001 \
  "With the new certificate it still cannot ask for the Geneva meter's certificate." \
  -V mqttv5 -q 1 -t '$enroll/m-00000002/simplereenroll' -m '{}'
kill "$BRIDGE_PID" 2>/dev/null || true
wait "$BRIDGE_PID" 2>/dev/null || true

echo
if ! kill -0 "$BROKER_PID" 2>/dev/null; then
  echo "==> error: the broker stopped during the demo. Its output:" >&2
  tail -n 30 "$RUN/mosquitto.out" "$LOG" | indent >&2
  errors=$((errors + 1))
fi
echo "==> stopping the broker (its log stays in $LOG)"
cleanup
BROKER_PID=""
# With a plugin built with sanitizers: any error they found in the broker.
if grep -qE 'ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer' "$RUN/mosquitto.out"; then
  echo "==> error: the sanitizers found problems in the broker (see $RUN/mosquitto.out):" >&2
  grep -m 5 -E 'ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer' "$RUN/mosquitto.out" | indent >&2
  errors=$((errors + 1))
fi

# ==================================================================================
# Part 2: certacl explain, without a broker
# ==================================================================================

# check EXPECTED POLICY CERT CLIENT_ID "what happens, in words" ACTION_ARGS...
#   EXPECTED is ALLOWED, DENIED or ANY; CERT is a name in pki/ without .pem.
check() {
  local expected="$1" policy="$2" cert="$3" client_id="$4" what="$5"
  shift 5
  explain "$policy" "$cert" "$client_id" "$@"
  case_header "$what"
  printf '    %s$ certacl %s%s\n' "$DIM" \
    "$(shell_words explain --policy "$policy" --cert "pki/$cert.pem" --client-id "$client_id" "$@")" "$OFF"
  show_outcome "$EXPLAIN_VERDICT" "$EXPLAIN_WHY"
  tally "$expected" "$EXPLAIN_VERDICT"
}

section "Part 2: asking certacl explain (no broker needed)" \
  "\`certacl explain\` answers the same questions for any certificate and policy," \
  "offline: handy to review a policy change before it reaches a broker."

section "Checking the example policies (certacl lint)"
for policy in smart-meters.toml factory-zones.toml bootstrap.toml monitoring.toml; do
  rc=0
  out="$("$CERTACL" lint "$policy" 2>&1)" || rc=$?
  case "$rc" in
    0) echo "  $policy: clean" ;;
    1) echo "  $policy: ${YELLOW}lint has remarks:${OFF}"; indent <<<"$out"; unexpected=$((unexpected + 1)) ;;
    *) echo "  $policy: ${YELLOW}cannot be loaded:${OFF}"; indent <<<"$out"; errors=$((errors + 1)) ;;
  esac
done

# --- factory zones --------------------------------------------------------------
section "Factory zones and conduits (factory-zones.toml)" \
  "Plant 'basel': a PLC and an operator panel (HMI) in zone-cell-1, a historian in" \
  "the DMZ, an engineering workstation. The certificate's OU is the zone; devices" \
  "stay in their zone, and cross between zones only through the listed conduits."

check ALLOWED factory-zones.toml plc-cell1 basel-plc-01 \
  "PLC plc-01 in cell 1 publishes a temperature reading in its own zone." \
  --publish zone/basel/zone-cell-1/plc/plc-01/telemetry/temperature
check DENIED factory-zones.toml plc-cell1 basel-plc-01 \
  "PLC plc-01 in cell 1 sends a stop command to a PLC in cell 2 (a cross-zone write)." \
  --publish zone/basel/zone-cell-2/plc/plc-07/cmd/stop
check ALLOWED factory-zones.toml hmi-cell1 basel-hmi-01 \
  "The cell 1 operator panel subscribes to the telemetry of every PLC in cell 1." \
  --subscribe 'zone/basel/zone-cell-1/plc/+/telemetry/#'
check DENIED factory-zones.toml hmi-cell1 basel-hmi-01 \
  "The cell 1 operator panel subscribes to the telemetry of cell 2." \
  --subscribe 'zone/basel/zone-cell-2/plc/+/telemetry/#'
check DENIED factory-zones.toml historian-dmz basel-historian-01 \
  "The DMZ historian writes a command straight into cell 1." \
  --publish zone/basel/zone-cell-1/plc/plc-01/cmd/stop
check ALLOWED factory-zones.toml historian-dmz basel-historian-01 \
  "The DMZ historian sends a production order to cell 1 through the DMZ-to-cell-1 conduit." \
  --publish conduit/basel/zone-dmz-to-zone-cell-1/orders --qos 1
check ALLOWED factory-zones.toml ews basel-ews-01 \
  "The engineering workstation stores a new configuration for a PLC in cell 2 (retained, QoS 1)." \
  --publish zone/basel/zone-cell-2/plc/plc-07/config --qos 1 --retain

# --- bootstrap ------------------------------------------------------------------
section "Sensors through their certificate's life (bootstrap.toml)" \
  "Sensor s-00000099 is fresh from the factory with only a birth certificate;" \
  "s-00000042 has an operational one; s-00000077's expires in 10 days."

check ALLOWED bootstrap.toml sensor-birth s-00000099 \
  "The new sensor asks for its operational certificate." --publish '$enroll/s-00000099/simpleenroll' --qos 1
check DENIED bootstrap.toml sensor-birth s-00000099 \
  "The new sensor publishes data before it has enrolled." --publish sensors/s-00000099/data/temperature
check DENIED bootstrap.toml sensor-birth s-00000099 \
  "The new sensor forges the enrollment bridge's answer to its own request." \
  --publish '$enroll/s-00000099/simpleenroll/accepted'
check DENIED bootstrap.toml sensor-impostor s-00000066 \
  "A birth certificate from another CA that merely calls itself 'Acme Manufacturing CA'." --connect
check ALLOWED bootstrap.toml sensor s-00000042 \
  "An enrolled sensor (certificate from the new issuing CA) publishes data." \
  --publish sensors/s-00000042/data/temperature --qos 1
check DENIED bootstrap.toml sensor-expiring s-00000077 \
  "A sensor whose certificate expires in 10 days publishes data." \
  --publish sensors/s-00000077/data/temperature --qos 1
check ALLOWED bootstrap.toml sensor-expiring s-00000077 \
  "The same sensor asks for a new certificate: the one thing it may still do." \
  --publish '$enroll/s-00000077/simplereenroll' --qos 1

# --- summary --------------------------------------------------------------------
printf '\n==> %d decisions: %d allowed, %d denied or refused, %d errors\n' "$cases" "$allowed" "$denied" "$errors"
echo "==> the certificates, policies and the broker's configuration and log are in $DEMO_DIR;"
echo "    try your own questions, e.g."
echo "    $(shell_word "$CERTACL") explain --policy $(shell_word "$DEMO_DIR/smart-meters.toml") --cert $(shell_word "$DEMO_DIR/pki/meter-zurich.pem") --client-id m-00000001 --subscribe 'meters/#'"
if ((unexpected > 0 || errors > 0)); then
  echo "==> error: $unexpected outcomes differ from what the policies intend, $errors errors" >&2
  exit 1
fi
echo "==> every outcome is the one the policies intend"
