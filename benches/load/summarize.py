#!/usr/bin/env python3
"""Parse wrk / h2load output, append JSON lines, and print the Markdown report.

Standard library only. Used by benches/load/run.sh; every sub-command is also
usable by hand:

  summarize.py record FILE key=value ...   append one JSON line to FILE
                                           (values parsed as int/float when
                                           they look like numbers; the special
                                           keys wrk=PATH and h2load=PATH parse
                                           that tool's raw output into fields)
  summarize.py parse-wrk RAW               print the parsed fields as JSON
  summarize.py parse-h2load RAW            print the parsed fields as JSON
  summarize.py report FILE                 print the Markdown report of FILE

Record types in the JSON-lines file ("type" key):
  meta    machine, versions and settings of the run (one per run)
  note    a human-readable remark (a skipped contender, a fallback, ...)
  http1   one wrk run: one contender, one round
  h2      one h2load run
  idle    one idle keep-alive measurement
"""

import json
import re
import statistics
import sys

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(value, unit):
    return float(value) * _UNIT_MS[unit]


def parse_wrk(text):
    """Fields of one `wrk --latency` run (latencies in milliseconds)."""
    out = {
        "requests": None,
        "rps": None,
        "p50_ms": None,
        "p75_ms": None,
        "p90_ms": None,
        "p99_ms": None,
        "lat_avg_ms": None,
        "lat_max_ms": None,
        "non2xx": 0,
        "err_connect": 0,
        "err_read": 0,
        "err_write": 0,
        "err_timeout": 0,
    }
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+)", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % pct, text, re.M)
        if m:
            out["p%s_ms" % pct] = round(_ms(m.group(1), m.group(2)), 4)
    m = re.search(r"^\s+Latency\s+([\d.]+)(us|ms|s|m|h)\s+\S+\s+([\d.]+)(us|ms|s|m|h)", text, re.M)
    if m:
        out["lat_avg_ms"] = round(_ms(m.group(1), m.group(2)), 4)
        out["lat_max_ms"] = round(_ms(m.group(3), m.group(4)), 4)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["err_connect"], out["err_read"], out["err_write"], out["err_timeout"] = (
            int(g) for g in m.groups()
        )
    out["errors"] = (
        out["non2xx"] + out["err_connect"] + out["err_read"] + out["err_write"] + out["err_timeout"]
    )
    return out


def parse_h2load(text):
    """Fields of one h2load run (request times in milliseconds)."""
    out = {
        "requests": None,
        "succeeded": None,
        "failed": None,
        "errored": None,
        "timeout": None,
        "status_2xx": None,
        "rps": None,
        "req_mean_ms": None,
        "req_max_ms": None,
    }
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", text)
    if m:
        out["rps"] = float(m.group(3))
    m = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
    )
    if m:
        g = [int(x) for x in m.groups()]
        out["requests"] = g[2]
        out["succeeded"], out["failed"], out["errored"], out["timeout"] = g[3], g[4], g[5], g[6]
    m = re.search(r"status codes: (\d+) 2xx", text)
    if m:
        out["status_2xx"] = int(m.group(1))
    m = re.search(
        r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", text
    )
    if m:
        out["req_max_ms"] = round(_ms(m.group(3), m.group(4)), 4)
        out["req_mean_ms"] = round(_ms(m.group(5), m.group(6)), 4)
    out["errors"] = sum(out[k] or 0 for k in ("failed", "errored", "timeout"))
    if out["succeeded"] is not None and out["status_2xx"] is not None:
        out["errors"] += out["succeeded"] - out["status_2xx"]
    return out


def _value(text):
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", text):
        return float(text)
    return text


def record(path, pairs):
    rec = {}
    for pair in pairs:
        key, _, val = pair.partition("=")
        if key == "wrk":
            with open(val, errors="replace") as f:
                rec.update(parse_wrk(f.read()))
        elif key == "h2load":
            with open(val, errors="replace") as f:
                rec.update(parse_h2load(f.read()))
        else:
            rec[key] = _value(val)
    # Derived: proxy CPU time per completed request, in microseconds.
    ticks, hz = rec.get("cpu_ticks"), rec.get("clk_tck")
    done = rec.get("succeeded") if rec.get("type") == "h2" else rec.get("requests")
    if isinstance(ticks, int) and isinstance(hz, int) and hz > 0 and done:
        rec["cpu_us_per_req"] = round(ticks / hz * 1e6 / done, 2)
        for part in ("user", "sys"):
            t = rec.get("cpu_%s_ticks" % part)
            if isinstance(t, int):
                rec["cpu_%s_us_per_req" % part] = round(t / hz * 1e6 / done, 2)
    elif rec.get("type") in ("http1", "h2"):
        rec.setdefault("cpu_us_per_req", None)
    with open(path, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    return rec


# ---------------------------------------------------------------- report


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _fmt(x, spec="{:.0f}", none="—"):
    return none if x is None else spec.format(x)


def _ordered(contenders, seen):
    order = [c for c in contenders if c in seen]
    return order + [c for c in seen if c not in order]


def report(path):
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    metas = [r for r in recs if r.get("type") == "meta"]
    meta = metas[-1] if metas else {}
    run_id = meta.get("run_id")
    if run_id is not None:
        recs = [r for r in recs if r.get("run_id") == run_id]
    notes = [r for r in recs if r.get("type") == "note"]
    contenders = str(meta.get("contenders", "")).split()
    lines = []
    w = lines.append

    w("## switchyard load comparison")
    w("")
    w("- date: %s" % meta.get("date", "?"))
    w("- machine: %s cores, %s" % (meta.get("nproc", "?"), meta.get("cpu_model", "?")))
    w("- kernel: %s" % meta.get("kernel", "?"))
    w(
        "- machine busy before start: %s%% (load average %s)"
        % (meta.get("busy_before_pct", "?"), meta.get("loadavg", "?"))
    )
    w(
        "- load: wrk -t%s -c%s -d%s --latency, %s interleaved round(s), backend: %s (3 instances)"
        % (
            meta.get("threads", "?"),
            meta.get("connections", "?"),
            meta.get("duration", "?"),
            meta.get("repeats", "?"),
            meta.get("backend", "?"),
        )
    )
    for key in ("ver_nginx", "ver_haproxy", "ver_wrk", "ver_h2load", "ver_switchyard"):
        if meta.get(key):
            w("- %s: %s" % (key[4:], meta[key]))
    w("")

    http1 = [r for r in recs if r.get("type") == "http1"]
    if http1:
        by = {}
        for r in http1:
            by.setdefault(r["contender"], []).append(r)
        direct_rps = _med([r.get("rps") for r in by.get("direct", [])])
        w("### HTTP/1.1 keep-alive (wrk)")
        w("")
        w(
            "| contender | req/s median (min–max) | vs direct | p50 ms | p99 ms | errors "
            "| CPU µs/req | peak RSS MB |"
        )
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for c in _ordered(contenders, by):
            rs = by[c]
            rps = [r.get("rps") for r in rs if r.get("rps") is not None]
            med = _med(rps)
            ratio = (med / direct_rps) if (med and direct_rps) else None
            rss = max((r.get("rss_peak_kb") or 0) for r in rs) / 1024.0
            errs = sum(r.get("errors") or 0 for r in rs)
            label = c + (" ¹" if c == "direct" else "")
            w(
                "| %s | %s (%s–%s) | %s | %s | %s | %s | %s | %s |"
                % (
                    label,
                    _fmt(med),
                    _fmt(min(rps) if rps else None),
                    _fmt(max(rps) if rps else None),
                    _fmt(ratio, "{:.2f}"),
                    _fmt(_med([r.get("p50_ms") for r in rs]), "{:.2f}"),
                    _fmt(_med([r.get("p99_ms") for r in rs]), "{:.2f}"),
                    errs,
                    _fmt(_med([r.get("cpu_us_per_req") for r in rs]), "{:.1f}"),
                    _fmt(rss, "{:.1f}"),
                )
            )
        w("")
        if "direct" in by:
            w(
                "¹ direct = wrk straight at one backend (the ceiling); its CPU and RSS columns "
                "are that backend's own, not a proxy's."
            )
            w("")
        w(
            "Per-round CPU µs/request (the number to decide on; noise between rounds is "
            "typically 5–15%):"
        )
        w("")
        rounds = sorted({r.get("round") for r in http1})
        w(
            "| contender | "
            + " | ".join("r%s" % x for x in rounds)
            + " | user / sys µs (median) | machine busy % | new TCP connections (machine-wide) |"
        )
        w("| --- | " + " | ".join("---:" for _ in rounds) + " | ---: | ---: | ---: |")
        for c in _ordered(contenders, by):
            per = {r.get("round"): r.get("cpu_us_per_req") for r in by[c]}
            busy = _med([r.get("machine_busy_pct") for r in by[c]])
            opens = _med([r.get("tcp_opens") for r in by[c]])
            user = _med([r.get("cpu_user_us_per_req") for r in by[c]])
            sys_ = _med([r.get("cpu_sys_us_per_req") for r in by[c]])
            w(
                "| %s | %s | %s / %s | %s | %s |"
                % (
                    c,
                    " | ".join(_fmt(per.get(x), "{:.1f}") for x in rounds),
                    _fmt(user, "{:.1f}"),
                    _fmt(sys_, "{:.1f}"),
                    _fmt(busy, "{:.0f}"),
                    _fmt(opens, "{:.0f}"),
                )
            )
        w("")
        w(
            "Machine busy %% and new connections are medians over the rounds, counted for "
            "the whole machine (/proc/stat, ActiveOpens in /proc/net/snmp). On an otherwise "
            "idle machine wrk opens %s connections per run and anything beyond that is the "
            "proxy connecting upstream (a pool that is too small reconnects constantly); "
            "other work on the machine (a test suite) inflates both."
            % meta.get("connections", "CONNECTIONS")
        )
        w("")

    h2 = [r for r in recs if r.get("type") == "h2"]
    if h2:
        w("### HTTP/2 cleartext, prior knowledge (h2load)")
        w("")
        w("| contender | req/s | mean ms | max ms | succeeded | errors | CPU µs/req |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        by = {}
        for r in h2:
            by.setdefault(r["contender"], []).append(r)
        for c in _ordered(contenders, by):
            for r in by[c]:
                w(
                    "| %s | %s | %s | %s | %s | %s | %s |"
                    % (
                        c,
                        _fmt(r.get("rps")),
                        _fmt(r.get("req_mean_ms"), "{:.2f}"),
                        _fmt(r.get("req_max_ms"), "{:.2f}"),
                        _fmt(r.get("succeeded")),
                        _fmt(r.get("errors")),
                        _fmt(r.get("cpu_us_per_req"), "{:.1f}"),
                    )
                )
        w("")

    idle = [r for r in recs if r.get("type") == "idle"]
    if idle:
        w("### Memory per idle keep-alive connection")
        w("")
        w("| contender | connections held | server sockets seen | RSS before MB | RSS after MB | KB/connection |")
        w("| --- | ---: | ---: | ---: | ---: | ---: |")
        by = {r["contender"]: r for r in idle}
        for c in _ordered(contenders, by):
            r = by[c]
            w(
                "| %s | %s | %s | %s | %s | %s |"
                % (
                    c + (" ¹" if c == "direct" else ""),
                    _fmt(r.get("held")),
                    _fmt(r.get("sockets_seen")),
                    _fmt((r.get("rss_before_kb") or 0) / 1024.0, "{:.1f}"),
                    _fmt((r.get("rss_after_kb") or 0) / 1024.0, "{:.1f}"),
                    _fmt(r.get("kb_per_conn"), "{:.2f}"),
                )
            )
        w("")

    if notes:
        w("### Notes")
        w("")
        for n in notes:
            w("- %s" % n.get("text", ""))
        w("")
    return "\n".join(lines)


def main(argv):
    if len(argv) >= 2 and argv[0] == "record":
        record(argv[1], argv[2:])
    elif len(argv) == 2 and argv[0] == "parse-wrk":
        with open(argv[1], errors="replace") as f:
            print(json.dumps(parse_wrk(f.read()), indent=1))
    elif len(argv) == 2 and argv[0] == "parse-h2load":
        with open(argv[1], errors="replace") as f:
            print(json.dumps(parse_h2load(f.read()), indent=1))
    elif len(argv) == 2 and argv[0] == "report":
        print(report(argv[1]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
