#!/usr/bin/env bash
# make-pki.sh: generates the demo PKI (CAs and device certificates that the
# example policies in examples/policies/ are written for) with the openssl CLI.
#
#   examples/demo/make-pki.sh [DIR]        default DIR: build/demo/pki
#
# Idempotent: if DIR already holds a complete PKI of this layout whose
# short-lived certificate has not run out, nothing is done. Otherwise the
# whole PKI is generated afresh in a temporary directory and then copied
# into DIR. Every key is ECDSA P-256 (fast to make, what devices use).
#
# FOR DEMOS AND TESTS ONLY: the private keys are unencrypted files.
set -euo pipefail

# Bump when the set of files or their contents change: an older PKI is redone.
readonly LAYOUT="certacl-demo-pki 3"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-$ROOT/build/demo/pki}"

# Every file a complete PKI has (keys beside them as NAME.key).
readonly CAS=(root-ca issuing-ca issuing-ca-2 manufacturing-ca impostor-ca)
readonly DEVICES=(meter-zurich meter-geneva meter-hostile headend-01 headend-02
                  plc-cell1 hmi-cell1 historian-dmz ews
                  sensor sensor-expiring sensor-birth sensor-impostor
                  dashboard enroll-bridge)
# The demo broker's own TLS certificate (its listeners on 127.0.0.1).
readonly SERVERS=(broker)

is_complete() {
  [[ -f "$DIR/.complete" ]] && [[ "$(cat "$DIR/.complete")" == "$LAYOUT" ]] || return 1
  local n
  for n in "${CAS[@]}" "${DEVICES[@]}" "${SERVERS[@]}"; do
    [[ -f "$DIR/$n.pem" && -f "$DIR/$n.key" ]] || return 1
  done
  # The near-expiry certificate lives 10 days: once it has less than a day
  # left, make everything again so the demo keeps showing what it should.
  openssl x509 -in "$DIR/sensor-expiring.pem" -noout -checkend 86400 >/dev/null 2>&1
}

if is_complete; then
  echo "==> demo PKI already complete in $DIR (delete it to make a new one)"
  exit 0
fi

echo "==> generating the demo PKI in $DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/openssl.log"

# Runs openssl quietly; on failure shows what it said and stops.
ossl() {
  if ! openssl "$@" >>"$LOG" 2>&1; then
    echo "==> openssl $1 failed:" >&2
    cat "$LOG" >&2
    exit 1
  fi
}

# The extensions of each kind of certificate. No system openssl.cnf is read,
# so the result is the same on every machine.
cat >"$WORK/pki.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt             = no
[dn]

[root_ca]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[issuing_ca]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[device]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[server]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF

# new_key_and_csr NAME SUBJECT
new_key_and_csr() {
  ossl req -new -config "$WORK/pki.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -keyout "$WORK/$1.key" -out "$WORK/$1.csr" -subj "$2"
}

# self_signed_ca NAME SUBJECT
self_signed_ca() {
  ossl req -x509 -config "$WORK/pki.cnf" -extensions root_ca \
    -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$WORK/$1.key" -out "$WORK/$1.pem" -days 3650 -subj "$2"
}

# sign NAME ISSUER EXTENSIONS DAYS [SUBJECT_ALT_NAME]
sign() {
  local name="$1" issuer="$2" section="$3" days="$4" san="${5:-}"
  local ext="$WORK/$name.ext"
  sed -n "/^\[$section\]/,/^\[/p" "$WORK/pki.cnf" | sed '1d;/^\[/d' >"$ext"
  [[ -n "$san" ]] && echo "subjectAltName = $san" >>"$ext"
  ossl x509 -req -in "$WORK/$name.csr" -CA "$WORK/$issuer.pem" -CAkey "$WORK/$issuer.key" \
    -days "$days" -extfile "$ext" -out "$WORK/$name.pem"
}

# ca NAME ISSUER SUBJECT
ca() {
  new_key_and_csr "$1" "$3"
  sign "$1" "$2" issuing_ca 1825
}

# device NAME ISSUER DAYS SUBJECT [SUBJECT_ALT_NAME]
device() {
  new_key_and_csr "$1" "$4"
  sign "$1" "$2" device "$3" "${5:-}"
}

# --- Certificate authorities -------------------------------------------------
# The broker's listener trusts root-ca.pem; both Acme CAs below chain to it.
self_signed_ca root-ca "/C=CH/O=Acme/CN=Acme Root CA"
# Issues operational device certificates. Policies name it with
# `ca = "pki/issuing-ca.pem"` (trust by key, not by issuer text).
ca issuing-ca      root-ca "/C=CH/O=Acme/CN=Acme Devices Issuing CA"
# Its successor during a CA rollover: policies accept either (`ca = [..]`).
ca issuing-ca-2    root-ca "/C=CH/O=Acme/CN=Acme Devices Issuing CA 2"
# Signs birth certificates (IDevID) in the factory, before a device has an
# operational certificate.
ca manufacturing-ca root-ca "/C=CH/O=Acme/CN=Acme Manufacturing CA"
# Another CA the broker also trusts (say, for a contractor's fleet) that calls
# itself "Acme Manufacturing CA" too: same issuer text, different key.
self_signed_ca impostor-ca "/C=CH/O=Acme/CN=Acme Manufacturing CA"

# --- Smart meters (examples/policies/smart-meters.toml) ----------------------
device meter-zurich  issuing-ca 365 "/C=CH/L=zurich/O=Acme Utilities/OU=meter/CN=m-00000001"
device meter-geneva  issuing-ca 365 "/C=CH/L=geneva/O=Acme Utilities/OU=meter/CN=m-00000002"
# A meter whose CN tries to smuggle MQTT wildcards into topic templates.
device meter-hostile issuing-ca 365 "/C=CH/L=zurich/O=Acme Utilities/OU=meter/CN=m-0000\/#"

# Two instances of the head-end system that reads every meter and sends
# commands and tariffs: recognised by the DNS name in their certificates
# (role head-end), not by their CNs.
device headend-01    issuing-ca 365 "/C=CH/O=Acme Utilities/OU=head-end/CN=headend-01" \
  "DNS:headend-01.headend.acme.example"
device headend-02    issuing-ca 365 "/C=CH/O=Acme Utilities/OU=head-end/CN=headend-02" \
  "DNS:headend-02.headend.acme.example"

# --- Factory zones (examples/policies/factory-zones.toml): OU = zone, L = site
device plc-cell1     issuing-ca 365 "/C=CH/L=basel/O=Acme Plant Operations/OU=zone-cell-1/CN=plc-01"
device hmi-cell1     issuing-ca 365 "/C=CH/L=basel/O=Acme Plant Operations/OU=zone-cell-1/CN=hmi-01"
device historian-dmz issuing-ca 365 "/C=CH/L=basel/O=Acme Plant Operations/OU=zone-dmz/CN=historian-01"
# Engineering certificates live 30 days (see stale-engineering-certificates).
device ews           issuing-ca 30  "/C=CH/L=basel/O=Acme Plant Operations/OU=zone-engineering/CN=ews-01"

# --- Sensors through their life (examples/policies/bootstrap.toml) -----------
# Operational, from the rollover CA, with a DNS name in subjectAltName.
device sensor          issuing-ca-2 365 "/C=CH/O=Acme Sensors/CN=s-00000042" \
  "DNS:s-00000042.sensors.acme.example"
# Operational but expiring in 10 days: must renew before anything else.
device sensor-expiring issuing-ca 10 "/C=CH/O=Acme Sensors/CN=s-00000077" \
  "DNS:s-00000077.sensors.acme.example"
# Fresh from the factory: only a birth certificate.
device sensor-birth    manufacturing-ca 3650 "/C=CH/O=Acme Sensors/serialNumber=ACME-S-99/CN=s-00000099"
# A birth certificate from the impostor CA: the issuer text is right, the key is not.
device sensor-impostor impostor-ca 3650 "/C=CH/O=Acme Sensors/serialNumber=ACME-S-66/CN=s-00000066"

# --- Operations --------------------------------------------------------------
# The operators' dashboard: reads the broker's counters on the demo's
# monitoring listener (examples/mosquitto/monitoring.toml), nothing else.
device dashboard     issuing-ca 365 "/C=CH/O=Acme/OU=operations/CN=ops-dashboard-01"

# --- Certificate renewal -------------------------------------------------------
# certacl-enroll-bridge's own client certificate: the enroll-bridge role of
# smart-meters.toml (O=Acme Utilities, OU=enroll-bridge, from the issuing CA).
device enroll-bridge issuing-ca 365 "/C=CH/O=Acme Utilities/OU=enroll-bridge/CN=certacl-enroll-bridge-1"

# --- The broker ---------------------------------------------------------------
# The demo broker's server certificate: clients check it against root-ca.pem
# and the name they connect to (localhost or 127.0.0.1).
new_key_and_csr broker "/C=CH/O=Acme/CN=localhost"
sign broker root-ca server 825 "DNS:localhost,IP:127.0.0.1"

# --- Install ------------------------------------------------------------------
mkdir -p "$DIR"
rm -f "$DIR/.complete"
for n in "${CAS[@]}" "${DEVICES[@]}" "${SERVERS[@]}"; do
  install -m 0644 "$WORK/$n.pem" "$DIR/$n.pem"
  install -m 0600 "$WORK/$n.key" "$DIR/$n.key"
done
echo "$LAYOUT" >"$DIR/.complete"
echo "==> demo PKI ready: ${#CAS[@]} CAs, ${#DEVICES[@]} device certificates, a broker certificate"
