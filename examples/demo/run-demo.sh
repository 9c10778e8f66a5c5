#!/usr/bin/env bash
# run-demo.sh: shows what certacl decides for a handful of devices, in words.
#
#   examples/demo/run-demo.sh          (normally through ./dev demo)
#
# Environment: CERTACL   the certacl CLI (default build/policy/certacl)
#              DEMO_DIR  where the PKI and the policies go (default build/demo)
#
# It generates the demo PKI (make-pki.sh, reused when present), copies the
# example policies next to it (their `ca = "pki/..."` paths then resolve),
# lints them, and asks `certacl explain` about each case below. The verdict
# comes from the exit code (0 allowed, 1 denied, 2 error), the reason from
# the "decision" line of the explanation.
#
# Every case states the verdict the policy is meant to give; the script exits
# non-zero if any verdict differs, so the demo doubles as an end-to-end check.
#
# shellcheck disable=SC2016  # '$SYS/#', '$enroll/...' are MQTT topics, not expansions
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CERTACL="${CERTACL:-$ROOT/build/policy/certacl}"
DEMO_DIR="${DEMO_DIR:-$ROOT/build/demo}"

if [[ ! -x "$CERTACL" ]]; then
  echo "==> error: $CERTACL is missing: build it first (./dev build)" >&2
  exit 1
fi

bash "$ROOT/examples/demo/make-pki.sh" "$DEMO_DIR/pki"
cp "$ROOT"/examples/policies/*.toml "$DEMO_DIR/"
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

indent() { sed 's/^/    /'; }

section() {
  printf '\n%s== %s ==%s\n' "$BOLD" "$1" "$OFF"
  shift
  local line
  for line in "$@"; do printf '%s\n' "$line"; done
}

cases=0 allowed=0 denied=0 errors=0 unexpected=0

# check EXPECTED POLICY CERT CLIENT_ID "what happens, in words" ACTION_ARGS...
#   EXPECTED is ALLOWED, DENIED or ANY; CERT is a name in pki/ without .pem.
check() {
  local expected="$1" policy="$2" cert="$3" client_id="$4" what="$5"
  shift 5
  local args=(explain --policy "$policy" --cert "pki/$cert.pem" --client-id "$client_id" "$@")
  local out rc=0
  out="$("$CERTACL" "${args[@]}" 2>&1)" || rc=$?

  local verdict colour
  case "$rc" in
    0) verdict=ALLOWED colour="$GREEN"; allowed=$((allowed + 1)) ;;
    1) verdict=DENIED  colour="$RED";   denied=$((denied + 1)) ;;
    *) verdict=ERROR   colour="$YELLOW"; errors=$((errors + 1)) ;;
  esac
  cases=$((cases + 1))

  # The reason: the explanation's "decision" line, else its last lines.
  local why
  why="$(grep -m1 -iE '^[[:space:]]*"?decision' <<<"$out" || true)"
  if [[ -n "$why" ]]; then
    why="$(sed -E 's/^[[:space:]]*"?[Dd]ecision"?[[:space:]]*[:=]?[[:space:]]*//;
                   s/^(ALLOW|DENY|ALLOWED|DENIED)[[:space:]:]+//' <<<"$why")"
  else
    why="$(tail -n 3 <<<"$out" | sed '2,$s/^/             /')"
  fi

  local shown="certacl" a
  for a in "${args[@]}"; do shown+=" $(shell_word "$a")"; done

  printf '\n%2d. %s\n' "$cases" "$what"
  printf '    %s$ %s%s\n' "$DIM" "$shown" "$OFF"
  printf '    %s%-7s%s  %s\n' "$colour" "$verdict" "$OFF" "$why"
  # At connect, the rules voided for this device (an unsafe or missing value).
  if [[ "$1" == --connect ]]; then
    grep -iE 'void for this device' <<<"$out" | head -n 4 | sed -E 's/^[[:space:]]*/             note: /' || true
  fi
  if [[ "$expected" != ANY && "$verdict" != "$expected" ]]; then
    printf '    %s!! expected %s here%s\n' "$YELLOW" "$expected" "$OFF"
    unexpected=$((unexpected + 1))
  fi
}

# --- the policies ---------------------------------------------------------------
section "Checking the example policies (certacl lint)"
for policy in smart-meters.toml factory-zones.toml bootstrap.toml; do
  rc=0
  out="$("$CERTACL" lint "$policy" 2>&1)" || rc=$?
  case "$rc" in
    0) echo "  $policy: clean" ;;
    1) echo "  $policy: ${YELLOW}lint has remarks:${OFF}"; indent <<<"$out"; unexpected=$((unexpected + 1)) ;;
    *) echo "  $policy: ${YELLOW}cannot be loaded:${OFF}"; indent <<<"$out"; errors=$((errors + 1)) ;;
  esac
done

# --- smart meters ---------------------------------------------------------------
section "Smart meters (smart-meters.toml)" \
  "Two meters: m-00000001 in Zurich and m-00000002 in Geneva. Each may publish" \
  "only under meters/<its city>/<its CN>/ and must use its CN as MQTT client id."

check ALLOWED smart-meters.toml meter-zurich m-00000001 \
  "The Zurich meter connects with its own client id." --connect
check DENIED smart-meters.toml meter-zurich m-00000002 \
  "The Zurich meter connects with the Geneva meter's client id (it would take over that meter's session)." --connect
check ALLOWED smart-meters.toml meter-zurich m-00000001 \
  "The Zurich meter publishes its reading at QoS 1." --publish meters/zurich/m-00000001/reading --qos 1
check DENIED smart-meters.toml meter-zurich m-00000001 \
  "The Zurich meter publishes a reading in the Geneva meter's name." --publish meters/geneva/m-00000002/reading --qos 1
check DENIED smart-meters.toml meter-zurich m-00000001 \
  "The Zurich meter publishes its reading as a retained message (readings must never be retained)." \
  --publish meters/zurich/m-00000001/reading --qos 1 --retain
check ALLOWED smart-meters.toml meter-zurich m-00000001 \
  "The Zurich meter raises a tamper alarm at QoS 2 (allowed for alarms only)." \
  --publish meters/zurich/m-00000001/alarm --qos 2
check DENIED smart-meters.toml meter-zurich m-00000001 \
  "The Zurich meter subscribes to '#', i.e. to everything on the broker." --subscribe '#'
check ALLOWED smart-meters.toml meter-geneva m-00000002 \
  "The Geneva meter receives the fleet-wide tariff announcement." --read meters/broadcast/tariff

section "A hostile certificate" \
  "A meter certificate whose CN is 'm-0000/#' tries to smuggle MQTT wildcards into" \
  "the topic templates. Any value containing '/', '+' or '#' voids the rules it" \
  "would be put into, so the certificate gains nothing."

check ALLOWED smart-meters.toml meter-hostile 'm-0000/#' \
  "The hostile meter connects with its CN as client id. It matches the meter role, but every rule that would put its CN into a topic is void:" \
  --connect
check DENIED smart-meters.toml meter-hostile 'm-0000/#' \
  "The hostile meter subscribes to what a naive template would have granted it." \
  --subscribe 'meters/zurich/m-0000/#'
check DENIED smart-meters.toml meter-hostile 'm-0000/#' \
  "The hostile meter publishes a reading in the name of a real Zurich meter." \
  --publish meters/zurich/m-00000001/reading

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
check ALLOWED factory-zones.toml hmi-cell1 basel-hmi-01 \
  "The cell 1 operator panel tells PLC plc-01 in its cell to start." \
  --publish zone/basel/zone-cell-1/plc/plc-01/cmd/start --qos 1
check DENIED factory-zones.toml historian-dmz basel-historian-01 \
  "The DMZ historian writes a command straight into cell 1." \
  --publish zone/basel/zone-cell-1/plc/plc-01/cmd/stop
check ALLOWED factory-zones.toml historian-dmz basel-historian-01 \
  "The DMZ historian sends a production order to cell 1 through the DMZ-to-cell-1 conduit." \
  --publish conduit/basel/zone-dmz-to-zone-cell-1/orders --qos 1
check ALLOWED factory-zones.toml ews basel-ews-01 \
  "The engineering workstation stores a new configuration for a PLC in cell 2 (retained, QoS 1)." \
  --publish zone/basel/zone-cell-2/plc/plc-07/config --qos 1 --retain
check DENIED factory-zones.toml ews basel-ews-01 \
  "The engineering workstation subscribes to the broker's internals (\$SYS)." --subscribe '$SYS/#'

# --- bootstrap ------------------------------------------------------------------
section "Sensors through their certificate's life (bootstrap.toml)" \
  "Sensor s-00000099 is fresh from the factory with only a birth certificate;" \
  "s-00000042 has an operational one; s-00000077's expires in 10 days."

check ALLOWED bootstrap.toml sensor-birth s-00000099 \
  "The new sensor connects with its birth certificate." --connect
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
printf '\n==> %d cases: %d allowed, %d denied, %d errors\n' "$cases" "$allowed" "$denied" "$errors"
echo "==> the certificates and policies are in $DEMO_DIR: try your own questions with"
echo "    $(shell_word "$CERTACL") explain --policy $DEMO_DIR/smart-meters.toml --cert $DEMO_DIR/pki/meter-zurich.pem --client-id m-00000001 --subscribe 'meters/#'"
if ((unexpected > 0 || errors > 0)); then
  echo "==> error: $unexpected verdicts differ from what the policies intend, $errors errors" >&2
  exit 1
fi
echo "==> every verdict is the one the policies intend"
