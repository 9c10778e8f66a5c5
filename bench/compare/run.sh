#!/usr/bin/env bash
# bench/compare/run.sh — end-to-end benchmark of issue 6: certacl against
# Mosquitto's built-in certificate ACLs, on 127.0.0.1, with certacl-loadgen.
#
# Usage:
#   bench/compare/run.sh [--quick] [--rounds R (3)] [--devices N (2000)]
#                        [--connects C (= N)] [--concurrency K (50)]
#                        [--seconds T (10)] [--rate R (0)] [--deny-seconds T (5)]
#                        [--configs i,ii,iii,iv,v,vi,vii] [--reuse-fleet]
#                        [--out DIR (bench/compare/results)]
#
# It builds nothing: build a Release tree first and point it at the binaries
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2
#   CERTACL_LOADGEN  (default build-bench/bench/certacl-loadgen)
#   CERTACL_PLUGIN   (default build-bench/plugin/mosquitto_certacl.so)
#   CERTACL          (default build-bench/policy/certacl; used to lint the policy)
#   MOSQUITTO        (default: mosquitto on PATH; 2.0.11 on Debian 12)
#
# Configurations (one broker each, all on 127.0.0.1, started once):
#   i    TLS + require_certificate true, no ACL (allow_anonymous true)
#   ii   built-in: use_identity_as_username + crlfile (small CRL) + acl_file (pattern rules)
#   iii  certacl: policy.toml + [revocation] crl_files = the same small CRL
#   iv   certacl: 100,000-role policy + 1,000,000-entry CRL (its own fleet dir, same sizes)
#   v    certacl: policy.toml + [revocation] ocsp = a local `openssl ocsp` responder,
#        mode = "hard-fail", warm (every device and collector answered before measuring)
#   vi   certacl as (iii) + plugin_opt_state_file (the README's configuration): its
#        `hold` is a restart of a broker that knows the fleet (the signature checks
#        and persistent sessions of earlier lifetimes are in the state file)
#   vii  certacl as (iii) without its `ca` condition: the broker's cafile is
#        the only trust, as for (ii), so a first connect verifies no signature
#        beyond the TLS handshake's
#
# Every broker is warmed (connect passes until every device is accepted, then
# a 1 s pubsub) and then, for R rounds, each measurement runs on every
# configuration in turn (A/B alternated in the same run; the order is rotated
# by one configuration every round). Per configuration and round, in order:
#   hold      a freshly started broker (same configuration): all N devices
#             connect (a storm at concurrency K: each device's FIRST connect
#             since the broker started, when certacl's signature cache is
#             cold) and are held open; connects/s, broker CPU per connection,
#             and VmRSS before any client vs while holding. (v) keeps its warm
#             broker (a fresh one has no OCSP answers and hard-fail would
#             refuse), so it has no first-connect figure and its memory figure
#             is a lower bound (freed heap reused)
#   connect   storm of C connects at concurrency K on that broker: devices
#             RECONNECTING (broker CPU per connection)
#   pubsub    QoS 0 and QoS 1, 50 publishers, fan-out to 4 collectors, T s each,
#             as fast as the broker takes them (or --rate R per publisher);
#             broker CPU per delivered message
#   deny      forbidden publishes/subscribes; N/A for (i), which has no ACL
# Broker CPU is utime+stime from /proc/<pid>/stat (all threads), converted
# from clock ticks, as the delta around each run.
#
# The whole run happens in a private network namespace (the script re-executes
# itself under `unshare -n`, or `unshare -rn` when not root): `openssl ocsp`
# binds every interface, and nothing here must be reachable from outside.
# Brokers are pinned to core 0 and the load generator to core 1 (taskset)
# when there are at least 2 cores.
#
# Output (in OUT): runs.jsonl (one JSON line per run, with config, round,
# broker CPU/RSS and the load generator's own JSON line), summary.md (medians
# over rounds, ratios against (i) and (ii)), also printed; logs/ (brokers,
# responder, load generator stderr); fleet-small/ and fleet-big/.
#
# Exit status: 0 if every run completed (connects all accepted, load generator
# exit 0) and unauthorized_deliveries is 0 wherever an ACL is on; 1 otherwise;
# 2 on a usage or setup error. No timing is asserted.
# --quick: a tiny fleet, 1 round, 1-2 s runs, small CRL/roles for (iv): the CI
# smoke run (ctest bench_compare_smoke).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

usage() { sed -n '3,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

quick=0; rounds=3; devices=2000; connects=""; concurrency=50; seconds=10; deny_seconds=5
rate=0; configs="i,ii,iii,iv,v,vi,vii"; reuse_fleet=0; out="$here/results"
big_crl=1000000; big_roles=100000; publishers=50; collectors=4
args=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds="$2"; shift ;;
    --devices) devices="$2"; shift ;;
    --connects) connects="$2"; shift ;;
    --concurrency) concurrency="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --deny-seconds) deny_seconds="$2"; shift ;;
    --rate) rate="$2"; shift ;;
    --configs) configs="$2"; shift ;;
    --reuse-fleet) reuse_fleet=1 ;;
    --out) out="$2"; shift ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument: $1" >&2; usage ;;
  esac
  shift
done
if [[ $quick == 1 ]]; then
  rounds=1; devices=40; seconds=1; deny_seconds=1; concurrency=10
  big_crl=20000; big_roles=200; publishers=10; rate=100
fi
[[ -n "$connects" ]] || connects=$devices

# --- private network namespace ------------------------------------------------
if [[ -z "${CERTACL_BENCH_IN_NETNS:-}" ]]; then
  export CERTACL_BENCH_IN_NETNS=1
  if [[ $EUID -eq 0 ]]; then
    exec unshare -n -- bash "$0" "${args[@]}"
  else
    exec unshare -rn -- bash "$0" "${args[@]}"
  fi
fi
ip link set lo up

# --- binaries -------------------------------------------------------------------
loadgen="${CERTACL_LOADGEN:-$root/build-bench/bench/certacl-loadgen}"
[[ -x "$loadgen" || -n "${CERTACL_LOADGEN:-}" ]] || loadgen="$root/build-bench/bench/loadgen/certacl-loadgen"
plugin="${CERTACL_PLUGIN:-$root/build-bench/plugin/mosquitto_certacl.so}"
certacl="${CERTACL:-$root/build-bench/policy/certacl}"
mosquitto="${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}"
for b in "$loadgen" "$mosquitto" "$certacl"; do
  [[ -x "$b" ]] || { echo "run.sh: missing executable $b (see the header for how to build)" >&2; exit 2; }
done
[[ -f "$plugin" ]] || { echo "run.sh: missing plugin $plugin" >&2; exit 2; }
command -v python3 >/dev/null || { echo "run.sh: python3 is needed for the summary" >&2; exit 2; }

mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
raw="$out/runs.jsonl"; : > "$raw"
rm -f "$out/state-vi" "$out/state-vi.tmp"  # (vi)'s earlier lifetime is this run's warm-up
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
clk_tck="$(getconf CLK_TCK)"

# --- pinning --------------------------------------------------------------------
ncpu="$(nproc)"
if [[ $ncpu -ge 2 ]]; then
  pin_broker=(taskset -c 0); pin_load=(taskset -c 1)
  pinning="brokers pinned to core 0, load generator and OCSP responder to core 1 (taskset)"
else
  pin_broker=(); pin_load=()
  pinning="not pinned (only $ncpu core)"
fi
echo "run.sh: $pinning" >&2

# --- cleanup --------------------------------------------------------------------
pids=(); groups=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${groups[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${groups[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "run.sh [+${SECONDS}s]: $*" >&2; }
failures=0
fail() { log "FAILED: $*"; failures=$((failures + 1)); }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { local s rest; s="$(< "/proc/$1/stat")"; rest="${s##*) }"; local f; read -ra f <<< "$rest"; echo $(( f[11] + f[12] )); }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
wait_port() { # port timeout_s
  local end=$((SECONDS + $2))
  while (( SECONDS < end )); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# --- fleets ---------------------------------------------------------------------
small="$out/fleet-small"; big="$out/fleet-big"
gen_fleet() { # dir extra-args...
  local dir="$1"; shift
  if [[ $reuse_fleet == 1 && -f "$dir/fleet.json" && -f "$dir/.args" && "$(cat "$dir/.args")" == "$*" ]]; then
    log "reusing fleet $dir"; return 0
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  local t0=$SECONDS
  "$loadgen" fleet --dir "$dir" --devices "$devices" --collectors "$collectors" "$@" > "$out/logs/fleet-$(basename "$dir").log" 2>&1 \
    || { log "fleet generation failed, see $out/logs/fleet-$(basename "$dir").log"; exit 1; }
  echo "$*" > "$dir/.args"
  log "fleet $dir: $devices devices${*:+, $*} ($((SECONDS - t0)) s)"
}
want() { [[ ",$configs," == *",$1,"* ]]; }
gen_fleet "$small"
if want iv; then gen_fleet "$big" --crl-entries "$big_crl" --roles "$big_roles"; fi

# The certacl policies: copies of the generated ones with a [revocation]
# table (the fleet's issuing CA and the given source line), `ca` paths made
# absolute.
with_revocation() { # source-policy fleetdir dest source-line
  { cat "$1"; printf '\n[revocation]\nmode = "hard-fail"\nissuers = ["%s/issuing-ca.pem"]\n%s\n' "$2" "$4"; } > "$3"
  sed -i "s#ca = \"issuing-ca.pem\"#ca = \"$2/issuing-ca.pem\"#g" "$3"
}
with_revocation "$small/policy.toml" "$small" "$out/policy-iii.toml" "crl_files = [\"$small/crl.pem\"]"
# (lint exits non-zero on warnings too; only errors stop the run)
lint_rc=0; "$certacl" lint "$out/policy-iii.toml" > "$out/logs/lint-iii.log" 2>&1 || lint_rc=$?
[[ $lint_rc == 0 ]] || grep -q ' 0 error(s)' "$out/logs/lint-iii.log" \
  || { log "certacl lint of policy-iii.toml failed:"; cat "$out/logs/lint-iii.log" >&2; exit 1; }
if want vii; then
  grep -v '^ca = ' "$out/policy-iii.toml" > "$out/policy-vii.toml"
fi
if want iv; then
  with_revocation "$big/policy-roles.toml" "$big" "$out/policy-iv.toml" "crl_files = [\"$big/crl.pem\"]"
fi

# --- OCSP responder (v) ---------------------------------------------------------
ocsp_port=""
if want v; then
  python3 "$here/compare.py" ocsp-index "$small/devices.pem" "$small/collectors.pem" > "$small/index.txt"
  ocsp_port="$(free_port)"
  # With -multi it makes itself a process group leader (so no setsid: that
  # makes its setpgid fail); cleanup signals the group, workers included.
  "${pin_load[@]}" openssl ocsp -index "$small/index.txt" -port "$ocsp_port" \
    -rsigner "$small/issuing-ca.pem" -rkey "$small/issuing-ca.key" -CA "$small/issuing-ca.pem" \
    -nmin 120 -multi 4 -ignore_err > "$out/logs/ocsp.log" 2>&1 &
  pids+=("$!"); groups+=("$!")
  # Readiness: a real OCSP query. Never a bare TCP connect: a connection
  # without a request wedges an `openssl ocsp` worker for good (-multi keeps
  # the others serving; SIGTERM to the parent kills its workers).
  ok=0
  for _ in $(seq 50); do
    if timeout 5 openssl ocsp -issuer "$small/issuing-ca.pem" -cert "$small/devices.pem" \
         -url "http://127.0.0.1:$ocsp_port/" -CAfile "$small/ca-bundle.pem" 2>/dev/null | grep -q ': good'; then
      ok=1; break
    fi
    sleep 0.2
  done
  [[ $ok == 1 ]] || { log "openssl ocsp does not answer 'good', see $out/logs/ocsp.log"; exit 1; }
  with_revocation "$small/policy.toml" "$small" "$out/policy-v.toml" "ocsp = \"http://127.0.0.1:$ocsp_port/\""
  log "OCSP responder on 127.0.0.1:$ocsp_port ($(wc -l < "$small/index.txt") serials)"
fi

# --- brokers --------------------------------------------------------------------
declare -A port pid fleet
write_conf() { # config fleetdir
  local c="$1" f="$2" conf="$out/mosquitto-$1.conf"
  cat > "$conf" <<EOF
# generated by bench/compare/run.sh: configuration ($c)
per_listener_settings false
listener ${port[$c]} 127.0.0.1
certfile $f/server.pem
keyfile $f/server.key
cafile $f/ca-bundle.pem
require_certificate true
tls_version tlsv1.2
set_tcp_nodelay true
persistence false
user root
max_queued_messages 1000000
log_dest file $out/logs/mosquitto-$c.log
log_type error
log_type warning
log_type notice
EOF
  case "$c" in
    i)   printf 'allow_anonymous true\n' >> "$conf" ;;
    ii)  printf 'allow_anonymous false\nuse_identity_as_username true\ncrlfile %s\nacl_file %s\n' \
           "$f/crl.pem" "$f/acl_file" >> "$conf" ;;
    iii|iv|v|vii) printf 'allow_anonymous false\nplugin %s\nplugin_opt_policy %s\n' \
           "$plugin" "$out/policy-$c.toml" >> "$conf" ;;
    vi)  printf 'allow_anonymous false\nplugin %s\nplugin_opt_policy %s\nplugin_opt_state_file %s\n' \
           "$plugin" "$out/policy-iii.toml" "$out/state-vi" >> "$conf" ;;
  esac
  echo "$conf"
}
# A plugin built with sanitizers needs their run-time libraries loaded first
# (env execs the broker, so the pid stays the broker's).
broker_env=()
runtimes="$(ldd "$plugin" 2>/dev/null | awk '$1 ~ /^lib(asan|tsan|ubsan)\.so/ { print $3 }' | paste -sd :)"
[[ -z "$runtimes" ]] || broker_env=(env "LD_PRELOAD=$runtimes")
start_broker() { # config
  local c="$1" conf
  port[$c]="$(free_port)"
  conf="$(write_conf "$c" "${fleet[$c]}")"
  : > "$out/logs/mosquitto-$c.log"
  "${pin_broker[@]}" "${broker_env[@]}" "$mosquitto" -c "$conf" > "$out/logs/mosquitto-$c.stderr" 2>&1 &
  pid[$c]=$!; pids+=("${pid[$c]}")
}

all=()
for c in i ii iii iv v vi vii; do
  want "$c" || continue
  all+=("$c")
  if [[ $c == iv ]]; then fleet[$c]="$big"; else fleet[$c]="$small"; fi
  start_broker "$c"
done
[[ ${#all[@]} -gt 0 ]] || { log "no configuration selected"; exit 2; }

restart_broker() { # config: stop it, start a fresh one (new port), wait until it listens
  local c="$1" old="${pid[$1]}" keep=() x
  kill -TERM "$old" 2>/dev/null || true
  wait "$old" 2>/dev/null || true
  for x in "${pids[@]}"; do [[ $x == "$old" ]] || keep+=("$x"); done; pids=("${keep[@]}")
  start_broker "$c"
  wait_port "${port[$c]}" 300 && kill -0 "${pid[$c]}" 2>/dev/null
}
lg() { "${pin_load[@]}" "$loadgen" "$@"; }
for c in "${all[@]}"; do
  # (iv) loads a 100,000-role policy at start-up: allow it time.
  wait_port "${port[$c]}" 300 || { log "broker ($c) did not listen, see $out/logs/mosquitto-$c.*"; exit 1; }
  kill -0 "${pid[$c]}" 2>/dev/null || { log "broker ($c) exited"; exit 1; }
done
log "brokers: $(for c in "${all[@]}"; do printf '(%s) port %s pid %s  ' "$c" "${port[$c]}" "${pid[$c]}"; done)"

# --- one run --------------------------------------------------------------------
# record config round mode exit cpu_ticks units rss_before rss_hold json
record() {
  python3 "$here/compare.py" record "$@" >> "$raw"
}
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(d.get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null || true; }

run_mode() { # config round mode [qos]
  local c="$1" r="$2" mode="$3" qos="${4:-}" p="${port[$1]}" f="${fleet[$1]}" b="${pid[$1]}"
  local errf="$out/logs/loadgen-$c-r$r-$mode${qos:+-qos$qos}.log" json rc=0 t0 t1 rss0="" rss1=""
  local label="$c/r$r/$mode${qos:+/qos$qos}"
  case "$mode" in
    connect)
      t0="$(cpu_ticks "$b")"
      json="$(lg connect --port "$p" --fleet "$f" --count "$connects" --concurrency "$concurrency" --label "$label" 2> "$errf")" || rc=$?
      t1="$(cpu_ticks "$b")" ;;
    pubsub)
      t0="$(cpu_ticks "$b")"
      json="$(lg pubsub --port "$p" --fleet "$f" --publishers "$publishers" --subscribers "$collectors" --qos "$qos" \
                 --seconds "$seconds" --rate "$rate" --label "$label" 2> "$errf")" || rc=$?
      t1="$(cpu_ticks "$b")" ;;
    deny)
      t0="$(cpu_ticks "$b")"
      json="$(lg deny --port "$p" --fleet "$f" --seconds "$deny_seconds" --label "$label" 2> "$errf")" || rc=$?
      t1="$(cpu_ticks "$b")" ;;
    hold)
      local hold_out="$errf.json" lp
      # A long-running broker reuses the heap its earlier clients freed, so
      # its VmRSS barely moves: the memory run gets a fresh broker (same
      # configuration) before anything connects. Not (v): a fresh broker has
      # no OCSP answers (hard-fail would refuse), so its figure is a lower bound.
      if [[ $c != v ]]; then
        restart_broker "$c" || { fail "$label: broker did not restart"; return 0; }
        p="${port[$c]}"; b="${pid[$c]}"
      fi
      sleep 0.5
      # Emptied here, not by the background job's redirection: that happens
      # in the child, possibly after the loop below has read an earlier
      # run's "holding" in the same file and stopped this storm (run 15's
      # (ii) in round 1, killed 0.12 s into its storm by this script).
      : > "$errf"
      rss0="$(rss_kb "$b")"; t0="$(cpu_ticks "$b")"
      # Not through lg(): $! must be the load generator itself (taskset execs it).
      "${pin_load[@]}" "$loadgen" connect --port "$p" --fleet "$f" --count "$devices" --concurrency "$concurrency" \
         --hold --hold-seconds 300 --label "$label" > "$hold_out" 2>> "$errf" &
      lp=$!; pids+=("$lp")
      local end=$((SECONDS + 240)) held=0
      while (( SECONDS < end )) && kill -0 "$lp" 2>/dev/null; do
        grep -q 'holding' "$errf" 2>/dev/null && { held=1; break; }
        sleep 0.2
      done
      if [[ $held == 1 ]]; then sleep 1; rss1="$(rss_kb "$b")"; fi
      t1="$(cpu_ticks "$b")"
      kill -TERM "$lp" 2>/dev/null || true
      wait "$lp" || rc=$?
      local keep=() x; for x in "${pids[@]}"; do [[ $x == "$lp" ]] || keep+=("$x"); done; pids=("${keep[@]}")
      json="$(cat "$hold_out")"
      [[ $held == 1 ]] || { [[ $rc != 0 ]] || rc=1; } ;;
  esac
  json="$(printf '%s\n' "$json" | grep '^{' | tail -1 || true)"
  record "$c" "$r" "$mode" "$qos" "$rc" "$((t1 - t0))" "$clk_tck" "$rss0" "$rss1" "$json"
  # Failures: a non-zero exit, a connect refused, an unauthorized delivery.
  if [[ $rc != 0 ]]; then fail "$label: certacl-loadgen exited $rc (see $errf)"; fi
  if [[ $mode == connect || $mode == hold ]]; then
    local n a; n="$(field "$json" connections)"; a="$(field "$json" accepted)"
    [[ -n "$a" && "$a" == "$n" ]] || fail "$label: $a of $n connections accepted"
  fi
  if [[ $c != i ]]; then
    local u; u="$(field "$json" unauthorized_deliveries)"
    [[ -z "$u" || "$u" == 0 ]] || fail "$label: $u unauthorized deliveries"
  fi
  log "$label: rc=$rc $(printf '%s' "$json" | cut -c1-220)"
}

# --- warm-up --------------------------------------------------------------------
# Connect passes until every device is accepted (under hard-fail OCSP the
# first connect of a device is refused while its status is fetched), then
# a short pubsub until it succeeds (the collectors need it too in (v)).
for c in "${all[@]}"; do
  ok=0
  for attempt in $(seq 15); do
    j="$(lg connect --port "${port[$c]}" --fleet "${fleet[$c]}" --count "$devices" --concurrency "$concurrency" \
          --label "$c/warmup" 2>> "$out/logs/warmup-$c.log" | grep '^{' | tail -1 || true)"
    a="$(field "$j" accepted)"; n="$(field "$j" connections)"
    if [[ -n "$a" && "$a" == "$n" && "$a" != 0 ]]; then ok=1; break; fi
    sleep 1
  done
  [[ $ok == 1 ]] || { log "warm-up of ($c) failed: last $j (see $out/logs/warmup-$c.log, mosquitto-$c.log)"; exit 1; }
  ok=0
  for attempt in $(seq 10); do
    if lg pubsub --port "${port[$c]}" --fleet "${fleet[$c]}" --publishers "$publishers" --subscribers "$collectors" \
          --qos 1 --seconds 1 --rate 100 --label "$c/warmup" >> "$out/logs/warmup-$c.log" 2>&1; then ok=1; break; fi
    sleep 1
  done
  [[ $ok == 1 ]] || { log "warm-up pubsub of ($c) failed (see $out/logs/warmup-$c.log)"; exit 1; }
  log "($c) warm after $attempt pubsub attempt(s)"
done

# --- rounds ---------------------------------------------------------------------
nconf=${#all[@]}
for r in $(seq "$rounds"); do
  order=()
  for k in $(seq 0 $((nconf - 1))); do order+=("${all[$(( (k + r - 1) % nconf ))]}"); done
  log "round $r of $rounds, order: ${order[*]}"
  # hold first: it restarts the broker, so every round measures the first
  # connects after a start (cold caches) and then reconnects (warm) alike.
  for c in "${order[@]}"; do run_mode "$c" "$r" hold; done
  for c in "${order[@]}"; do run_mode "$c" "$r" connect; done
  for q in 0 1; do for c in "${order[@]}"; do run_mode "$c" "$r" pubsub "$q"; done; done
  for c in "${order[@]}"; do [[ $c == i ]] || run_mode "$c" "$r" deny; done
done

# --- summary --------------------------------------------------------------------
python3 "$here/compare.py" summary "$raw" --pinning "$pinning" --devices "$devices" --connects "$connects" \
  --concurrency "$concurrency" --seconds "$seconds" --rounds "$rounds" --publishers "$publishers" \
  --collectors "$collectors" --rate "$rate" --big-crl "$big_crl" --big-roles "$big_roles" --quick "$quick" \
  --failures "$failures" > "$out/summary.md"
cat "$out/summary.md"
if [[ $failures != 0 ]]; then log "$failures failure(s)"; exit 1; fi
log "all runs completed; raw lines in $raw"
