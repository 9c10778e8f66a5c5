#!/usr/bin/env python3
"""Helpers of bench/compare/run.sh (standard library only).

  compare.py ocsp-index PEM...          index.txt for `openssl ocsp`: every certificate valid
  compare.py record CONFIG ROUND MODE QOS EXIT CPU_TICKS CLK_TCK RSS0_KB RSS1_KB JSON
                                        one raw JSON line (stdout)
  compare.py summary RUNS.jsonl [--options]   the Markdown summary (stdout)
"""
import argparse
import base64
import json
import re
import statistics
import sys

NAMES = {
    "i": "(i) TLS + require_certificate, no ACL",
    "ii": "(ii) built-in: identity as username + crlfile + acl_file",
    "iii": "(iii) certacl, policy + CRL",
    "iv": "(iv) certacl, {roles} roles + {crl}-entry CRL",
    "v": "(v) certacl, policy + OCSP (warm, hard-fail)",
    "vi": "(vi) certacl as (iii) + state file",
    "vii": "(vii) certacl as (iii) without `ca` (trust: the cafile, as (ii))",
}
ORDER = ["i", "ii", "iii", "iv", "v", "vi", "vii"]


# --- ocsp-index ------------------------------------------------------------------
def _der_len(b, i):
    n = b[i]
    i += 1
    if n < 0x80:
        return n, i
    k = n & 0x7F
    return int.from_bytes(b[i:i + k], "big"), i + k


def _serial(der):
    # Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial INTEGER, ...
    i = 1
    _, i = _der_len(der, i)          # Certificate
    i += 1
    _, i = _der_len(der, i)          # TBSCertificate
    if der[i] == 0xA0:               # [0] version
        i += 1
        n, i = _der_len(der, i)
        i += n
    assert der[i] == 0x02, "serial is not an INTEGER"
    i += 1
    n, i = _der_len(der, i)
    return int.from_bytes(der[i:i + n], "big", signed=True)


def ocsp_index(files):
    seen = set()
    for path in files:
        text = open(path, encoding="ascii", errors="replace").read()
        for m in re.finditer(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S):
            serial = _serial(base64.b64decode("".join(m.group(1).split())))
            h = "%X" % serial
            if len(h) % 2:
                h = "0" + h
            if h in seen:
                continue
            seen.add(h)
            # status, expiry, revocation date, serial, file, subject
            print("V\t491231235959Z\t\t%s\tunknown\t/CN=bench-%s" % (h, h))


# --- record ----------------------------------------------------------------------
def record(a):
    config, rnd, mode, qos, rc, ticks, clk, rss0, rss1, raw = a
    try:
        res = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        res = {"unparsed": raw}
    cpu_s = int(ticks) / int(clk)
    line = {"config": config, "round": int(rnd), "mode": mode, "exit": int(rc),
            "broker_cpu_s": cpu_s, "result": res}
    if qos:
        line["qos"] = int(qos)
    if mode in ("connect", "hold") and res.get("accepted"):
        line["broker_cpu_us_per_connection"] = cpu_s * 1e6 / res["accepted"]
    if mode == "pubsub" and res.get("delivered"):
        line["broker_cpu_us_per_delivered"] = cpu_s * 1e6 / res["delivered"]
    if mode == "deny":
        n = (res.get("denied_publishes") or 0) + (res.get("denied_subscribes") or 0)
        if n:
            line["broker_cpu_us_per_denial"] = cpu_s * 1e6 / n
    if mode == "hold":
        if rss0:
            line["broker_rss_kb_before"] = int(rss0)
        if rss1:
            line["broker_rss_kb_holding"] = int(rss1)
        if rss0 and rss1 and res.get("accepted"):
            line["broker_rss_bytes_per_held_connection"] = (int(rss1) - int(rss0)) * 1024 / res["accepted"]
    print(json.dumps(line, sort_keys=True))


# --- summary ---------------------------------------------------------------------
def summary(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    for k in ["pinning", "devices", "connects", "concurrency", "seconds", "rounds", "publishers",
              "collectors", "rate", "big-crl", "big-roles", "quick", "failures"]:
        ap.add_argument("--" + k, default="")
    o = ap.parse_args(argv)
    runs = [json.loads(l) for l in open(o.runs) if l.strip()]
    configs = [c for c in ORDER if any(r["config"] == c for r in runs)]

    def matches(r, c, mode, qos):
        return r["config"] == c and r["mode"] == mode and (qos is None or r.get("qos") == qos)

    def vals(c, mode, key, qos=None, top=False):
        out = []
        for r in runs:
            if not matches(r, c, mode, qos):
                continue
            v = r.get(key) if top else r["result"].get(key)
            if isinstance(v, (int, float)):
                out.append(v)
        return out

    def med(c, mode, key, qos=None, top=False):
        v = vals(c, mode, key, qos, top)
        return statistics.median(v) if v else None

    def fmt(v, nd=0):
        if v is None:
            return "n/a"
        if nd == 0:
            return f"{v:,.0f}"
        return f"{v:,.{nd}f}"

    def ratio(a, b):
        return "n/a" if a is None or not b else f"{a / b:.3f}"

    def spread(c, mode, key, qos=None):
        v = vals(c, mode, key, qos)
        if len(v) < 2 or not statistics.median(v):
            return ""
        return f" ±{(max(v) - min(v)) / 2 / statistics.median(v) * 100:.1f}%"

    big_roles = f"{int(o.big_roles):,}" if o.big_roles else "?"
    big_crl = f"{int(o.big_crl):,}" if o.big_crl else "?"
    name = {c: NAMES[c].format(roles=big_roles, crl=big_crl) for c in configs}
    L = []
    p = L.append
    p("# certacl vs Mosquitto's built-in certificate ACLs: end-to-end (issue 6)")
    p("")
    if o.quick == "1":
        p("**Quick (smoke) run: tiny sizes and 1-2 s runs; these figures mean nothing.**")
        p("")
    p(f"Medians of {o.rounds} round(s), configurations alternated within each round. "
      f"{o.devices} devices, connect storm of {o.connects} at concurrency {o.concurrency}; "
      f"pubsub {o.publishers} publishers ("
      f"{'as fast as the broker takes them' if o.rate in ('', '0') else o.rate + ' msg/s each'}), "
      f"fan-out to {o.collectors} collectors, {o.seconds} s per QoS. "
      f"{o.pinning}. ±x% = half the min-max range over rounds.")
    p("")
    def connections(mode, skip=()):
        p("| configuration | connects/s | × (i) | × (ii) | connect p50 ms | p99 ms | broker CPU µs/connection |")
        p("|---|---:|---:|---:|---:|---:|---:|")
        ci = med("i", mode, "connects_per_s")
        cii = med("ii", mode, "connects_per_s")
        for c in configs:
            if c in skip:
                p(f"| {name[c]} | n/a (warm broker: not restarted) | | | | | |")
                continue
            v = med(c, mode, "connects_per_s")
            p(f"| {name[c]} | {fmt(v)}{spread(c, mode, 'connects_per_s')} | {ratio(v, ci)} | {ratio(v, cii)} "
              f"| {fmt(med(c, mode, 'connect_ms_p50'), 2)} | {fmt(med(c, mode, 'connect_ms_p99'), 2)} "
              f"| {fmt(med(c, mode, 'broker_cpu_us_per_connection', top=True), 0)} |")

    p("## Connections: devices reconnecting")
    p("")
    connections("connect")
    p("")
    p("## Connections: each device's first connect after a broker start")
    p("")
    p("The `hold` storm on a freshly started broker. certacl verifies a certificate's signature against a "
      "role's `ca` once per certificate and broker lifetime (the signature cache), so this is where that "
      "ECDSA verification shows; Mosquitto's own TLS handshake verifies the chain on every connect either way. "
      "(vi) keeps those checks in its state file (`plugin_opt_state_file`), so its fresh broker is a restart "
      "of a broker that knows the fleet: no verification. (vii) has no `ca` condition: like (ii), it trusts what the "
      "broker's cafile trusts, and verifies nothing beyond the handshake.")
    p("")
    connections("hold", skip=("v",))
    for q in (0, 1):
        p("")
        p(f"## Messages, QoS {q} (fan-out to {o.collectors} collectors)")
        p("")
        p("| configuration | delivered/s | × (i) | × (ii) | published/s | latency p50 ms | p99 ms | lost | broker CPU µs/delivered |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        di = med("i", "pubsub", "delivered_per_s", q)
        dii = med("ii", "pubsub", "delivered_per_s", q)
        for c in configs:
            v = med(c, "pubsub", "delivered_per_s", q)
            p(f"| {name[c]} | {fmt(v)}{spread(c, 'pubsub', 'delivered_per_s', q)} | {ratio(v, di)} | {ratio(v, dii)} "
              f"| {fmt(med(c, 'pubsub', 'published_per_s', q))} | {fmt(med(c, 'pubsub', 'latency_ms_p50', q), 2)} "
              f"| {fmt(med(c, 'pubsub', 'latency_ms_p99', q), 2)} | {fmt(med(c, 'pubsub', 'lost', q))} "
              f"| {fmt(med(c, 'pubsub', 'broker_cpu_us_per_delivered', q, top=True), 2)} |")
    p("")
    p("## Denials and memory")
    p("")
    p(f"Memory: VmRSS of a freshly started broker before any client vs while holding all {o.devices} devices, "
      "divided by the connections held.")
    p("")
    p("| configuration | denials/s | unauthorized deliveries (sum) | broker RSS B/held connection | added vs (i) |")
    p("|---|---:|---:|---:|---:|")
    ri = med("i", "hold", "broker_rss_bytes_per_held_connection", top=True)
    for c in configs:
        rss = med(c, "hold", "broker_rss_bytes_per_held_connection", top=True)
        if c == "i":
            den, unauth, added = "n/a (no ACL)", "n/a", "-"
        else:
            den = fmt(med(c, "deny", "denials_per_s"))
            u = vals(c, "deny", "unauthorized_deliveries") + vals(c, "pubsub", "unauthorized_deliveries")
            unauth = fmt(sum(u)) if u else "n/a"
            added = "n/a" if rss is None or ri is None else f"{rss - ri:+,.0f}"
        shown = fmt(rss)
        if rss is not None and rss <= 0:
            # The broker reused heap it had freed before (start-up, earlier clients).
            shown, added = "n/a (freed heap reused)", "n/a"
        elif c == "v" and rss is not None:
            added += " (lower bound: measured on the warm broker)"
        p(f"| {name[c]} | {den} | {unauth} | {shown} | {added} |")
    p("")
    p("## Against the targets of issue 6 (informational; nothing is asserted)")
    p("")

    p("Each ratio is of the medians, as in the tables above; after it, the same ratio "
      "round by round (a round measures every configuration on a broker its `hold` "
      "started, one configuration after the other, within minutes). Where the rounds "
      "fall on both sides of the target, this run cannot tell whether it is met: "
      "`bench/compare/ab.sh` measures such differences in broker CPU, pairing many fresh brokers.")
    p("")

    def per_round(c, ref, mode, key, qos=None):
        """Ratios c/ref, one per round in which both were measured."""
        def by_round(x):
            d = {}
            for r in runs:
                v = r["result"].get(key) if matches(r, x, mode, qos) else None
                if isinstance(v, (int, float)):
                    d.setdefault(r.get("round"), []).append(v)
            return {k: statistics.median(v) for k, v in d.items()}
        a, b = by_round(c), by_round(ref)
        return [a[k] / b[k] for k in a if b.get(k)]

    def line(what, v, target, ok, tail=""):
        p(f"- {what}: {v} (target {target}) — {'met' if ok else 'MISSED'}{tail}")

    def ratio_line(what, c, ref, mode, key, target, meets, qos=None):
        """The ratio of c's median to ref's against `target` (`meets` decides), then round by round."""
        v = med(c, mode, key, qos) / med(ref, mode, key, qos)
        rounds = per_round(c, ref, mode, key, qos)
        tail = ""
        if len(rounds) > 1:
            span = f"rounds {min(rounds):.3f}-{max(rounds):.3f}"
            hits = sum(1 for r in rounds if meets(r))
            if hits == len(rounds):
                tail = f"; {span}: met in every round"
            elif hits == 0:
                tail = f"; {span}: missed in every round"
            else:
                tail = f"; {span}: met in {hits} of {len(rounds)} rounds, not resolved by this run"
        line(what, f"{v:.3f}×", target, meets(v), tail)

    at_least_097, at_least_1, within_3pc = (lambda r: r >= 0.97), (lambda r: r >= 1.0), (lambda r: abs(r - 1) <= 0.03)
    for c, extra in (("iii", ""), ("vi", " (restart: a known fleet)"), ("vii", " (no `ca`: the trust of (ii))")):
        for mode, what in (("connect", "reconnects"), ("hold", "first connects after a start" + extra)):
            if med(c, mode, "connects_per_s") is not None and med("i", mode, "connects_per_s") \
                    and med("ii", mode, "connects_per_s"):
                ratio_line(f"certacl ({c}) connects/s vs (i), {what}", c, "i", mode, "connects_per_s",
                           "≥ 0.97×", at_least_097)
                ratio_line(f"certacl ({c}) connects/s vs (ii), {what}", c, "ii", mode, "connects_per_s",
                           "≥ 1.00×", at_least_1)
    for q in (0, 1):
        d3 = med("iii", "pubsub", "delivered_per_s", q)
        di = med("i", "pubsub", "delivered_per_s", q)
        dii = med("ii", "pubsub", "delivered_per_s", q)
        d4 = med("iv", "pubsub", "delivered_per_s", q)
        for c in ("iii", "vi"):
            if med(c, "pubsub", "delivered_per_s", q) is not None and di and dii:
                ratio_line(f"certacl ({c}) delivered/s QoS {q} vs (i)", c, "i", "pubsub", "delivered_per_s",
                           "≥ 0.97×", at_least_097, q)
                ratio_line(f"certacl ({c}) delivered/s QoS {q} vs (ii)", c, "ii", "pubsub", "delivered_per_s",
                           "≥ 1.00×", at_least_1, q)
        if d3 and d4 is not None:
            ratio_line(f"(iv) delivered/s QoS {q} vs (iii)", "iv", "iii", "pubsub", "delivered_per_s",
                       "within 3%", within_3pc, q)
    r3 = med("iii", "hold", "broker_rss_bytes_per_held_connection", top=True)
    if r3 is not None and ri is not None:
        line("RSS per held connection added by certacl, (iii) − (i)", f"{r3 - ri:,.0f} B", "< 1,024 B", r3 - ri < 1024)
    unauth_total = sum(sum(vals(c, m, "unauthorized_deliveries")) for c in configs if c != "i" for m in ("deny", "pubsub"))
    line("unauthorized deliveries, every ACL configuration and mode", f"{unauth_total}", "0", unauth_total == 0)
    p("")
    bad = [r for r in runs if r["exit"] != 0]
    p(f"Runs: {len(runs)}, load generator failures: {len(bad)}, script-detected failures: {o.failures or 0}.")
    return "\n".join(L) + "\n"


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "ocsp-index":
        ocsp_index(rest)
    elif cmd == "record":
        record(rest)
    elif cmd == "summary":
        sys.stdout.write(summary(rest))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
