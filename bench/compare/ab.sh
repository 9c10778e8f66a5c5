#!/bin/bash
# ab.sh: paired A/B of two broker configurations in broker CPU per unit of
# work, for differences smaller than what run.sh's wall clock can resolve.
#
#   bench/compare/ab.sh MODE CONF_A CONF_B [PAIRS]
#
#   MODE    connect: broker CPU per reconnect (2,000 connects, concurrency 50)
#           first: broker CPU per connect of the first pass after a broker
#           start (each device once); before the pairs, each configuration
#           runs one lifetime with one pass, so a plugin_opt_state_file in
#           it holds the fleet: a restart storm of a known fleet
#           qos0 | qos1: broker CPU per delivered message (pubsub, 50
#           publishers, fan-out to 4 collectors, 5 s)
#           qos0-held: as qos0, after the history every broker of run.sh
#           has by then: the whole fleet connected at once and held, then
#           released, then a connect storm (instead of one connect pass)
#   CONF_*  Mosquitto configuration files, such as the ones run.sh writes
#           (bench/compare/results/mosquitto-{i,ii,iii,iv}.conf). The port is
#           the first `listener` line; the fleet is the directory of the
#           `certfile` (run.sh's fleet directories hold the server's files).
#   PAIRS   default 8
#
# Every pair starts both brokers afresh (a broker process keeps its own
# speed, several % apart from an identical one, for its whole life: long-
# lived pairs of two identical (i) brokers measured 0.92× and 0.95×, fresh
# pairs 1.01×), warms each with one connect pass of the whole fleet (so
# certacl's signature cache is warm and every device has been seen), then
# measures A and B one after the other, the order alternating by pair.
# Brokers on core 0, the load generator on core 1. Prints each pair (A B,
# in 1/10 µs per connect or ns per delivered message) and B/A as the ratio
# of the sums, the median of the pairs' ratios and their geometric mean.
# CERTACL_LOADGEN and MOSQUITTO override the binaries.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
mode=$1 conf_a=$2 conf_b=$3 pairs=${4:-8}
case $mode in connect | first | qos0 | qos1 | qos0-held) ;; *) echo "ab.sh: MODE is connect, first, qos0, qos1 or qos0-held, not '$mode'" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
loadgen=${CERTACL_LOADGEN:-$root/build-bench/bench/certacl-loadgen}
mosquitto=${MOSQUITTO:-mosquitto}
[[ -x $loadgen ]] || { echo "ab.sh: no load generator at $loadgen (build build-bench first)" >&2; exit 2; }

port_of() { awk '$1 == "listener" { print $2; exit }' "$1"; }
fleet_of() { dirname "$(awk '$1 == "certfile" { print $2; exit }' "$1")"; }
port_a=$(port_of "$conf_a") port_b=$(port_of "$conf_b")
fleet_a=$(fleet_of "$conf_a") fleet_b=$(fleet_of "$conf_b")
for v in port_a port_b; do [[ -n ${!v} ]] || { echo "ab.sh: no listener line in the configuration ($v)" >&2; exit 2; }; done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Broker CPU per unit of work of one measurement.
measure() {
  local pid=$1 port=$2 fleet=$3 t0 t1 units scale
  t0=$(cpu_ticks "$pid")
  if [[ $mode == connect || $mode == first ]]; then
    taskset -c 1 "$loadgen" connect --port "$port" --fleet "$fleet" --count 2000 --concurrency 50 >/dev/null 2>&1
    units=2000 scale=100000  # ticks (10 ms) -> 1/10 µs
  else
    units=$(taskset -c 1 "$loadgen" pubsub --port "$port" --fleet "$fleet" --publishers 50 --subscribers 4 \
      --qos "$qos" --seconds 5 2>/dev/null | grep '^{' | tail -1 |
      python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["delivered"])')
    scale=10000000  # ticks -> ns
  fi
  t1=$(cpu_ticks "$pid")
  (( units > 0 )) || { echo "ab.sh: nothing measured on port $port" >&2; exit 1; }
  echo $(( (t1 - t0) * scale / units ))
}

start() {
  taskset -c 0 "$mosquitto" -c "$1" >/dev/null 2>&1 &
  pids+=($!)
  local i
  for i in $(seq 1 240); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "ab.sh: the broker of $1 exited" >&2; exit 1; }
    sleep 0.25
  done
  echo "ab.sh: the broker of $1 does not listen on $2" >&2
  exit 1
}

qos=${mode#qos}; qos=${qos%-held}

# run.sh's history before a pubsub run: the whole fleet held at once, then
# released (the load generator stopped), then a storm of reconnects.
hold_then_reconnect() { # port fleet
  local err lp i
  err=$(mktemp)
  taskset -c 1 "$loadgen" connect --port "$1" --fleet "$2" --count 2000 --concurrency 50 --hold --hold-seconds 300 \
    >/dev/null 2>"$err" &
  lp=$!
  for i in $(seq 1 1200); do grep -q holding "$err" && break; kill -0 "$lp" 2>/dev/null || break; sleep 0.2; done
  grep -q holding "$err" || { echo "ab.sh: the hold on port $1 did not complete: $(cat "$err")" >&2; rm -f "$err"; exit 1; }
  sleep 1
  kill -TERM "$lp" 2>/dev/null || true
  wait "$lp" 2>/dev/null || true
  rm -f "$err"
  taskset -c 1 "$loadgen" connect --port "$1" --fleet "$2" --count 2000 --concurrency 50 >/dev/null 2>&1
}

if [[ $mode == first ]]; then  # one earlier lifetime each (fills a state file)
  for ab in a b; do
    conf_v=conf_$ab port_v=port_$ab fleet_v=fleet_$ab
    pids=()
    start "${!conf_v}" "${!port_v}"
    taskset -c 1 "$loadgen" connect --port "${!port_v}" --fleet "${!fleet_v}" --count 2000 --concurrency 50 >/dev/null 2>&1
    cleanup
  done
fi
{
trap cleanup EXIT  # this loop runs in a subshell of its own
for k in $(seq 1 "$pairs"); do
  pids=()
  start "$conf_a" "$port_a"; a=${pids[-1]}
  start "$conf_b" "$port_b"; b=${pids[-1]}
  if [[ $mode == qos0-held ]]; then
    hold_then_reconnect "$port_a" "$fleet_a"
    hold_then_reconnect "$port_b" "$fleet_b"
  elif [[ $mode != first ]]; then
    taskset -c 1 "$loadgen" connect --port "$port_a" --fleet "$fleet_a" --count 2000 --concurrency 50 >/dev/null 2>&1
    taskset -c 1 "$loadgen" connect --port "$port_b" --fleet "$fleet_b" --count 2000 --concurrency 50 >/dev/null 2>&1
  fi
  if (( k % 2 )); then
    x=$(measure "$a" "$port_a" "$fleet_a"); y=$(measure "$b" "$port_b" "$fleet_b")
  else
    y=$(measure "$b" "$port_b" "$fleet_b"); x=$(measure "$a" "$port_a" "$fleet_a")
  fi
  echo "$x $y"
  cleanup
done
} | python3 -c '
import statistics as st, sys
rows = [tuple(map(int, l.split())) for l in sys.stdin if l.strip()]
if not rows: sys.exit(1)
for a, b in rows: print(a, b)
r = [b / a for a, b in rows]
print("B/A: ratio of sums %.3f, median of pairs %.3f, geometric mean %.3f (%d pairs)" %
      (sum(b for _, b in rows) / sum(a for a, _ in rows), st.median(r), st.geometric_mean(r), len(rows)))'
