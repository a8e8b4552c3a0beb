#!/usr/bin/python3
"""
bench_report.py OUT_DIR - the figures of one load/bench.sh run.

Reads OUT_DIR/meta.jsonl (what bench.sh ran: commands, exit codes, RSS and
CPU samples, the steps) and the wsgate-load reports in OUT_DIR/raw/, and
writes OUT_DIR/summary.json (every figure, with its target and whether it
was met), OUT_DIR/summary.md (the same for humans, pasteable into
docs/benchmarks.md) and the plots in OUT_DIR/plots/ (matplotlib, Debian's
python3-matplotlib, run with /usr/bin/python3).

Exit status: 0 when every scenario ran and none reported a failure, 1
otherwise (the summary says which), 2 when the run's files are unusable.
Missed targets never fail it: speed is a figure, not a test.
"""

import json
import math
import os
import statistics
import sys

PCTS = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9)]


def load_meta(out):
    meta = {"env": {}, "runs": {}, "samples": {}, "steps": {}, "probes": {},
            "processes": {}, "meminfo": {}, "gateways": []}
    with open(os.path.join(out, "meta.jsonl")) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            m = json.loads(line)
            t = m["type"]
            if t == "env":
                meta["env"] = m
            elif t == "run":
                meta["runs"][m["name"]] = m
            elif t == "sample":
                meta["samples"].setdefault(m["tag"], {})[m["proc"] + ":" + str(m["pid"])] = m
            elif t == "step":
                meta["steps"].setdefault(m["series"], []).append(m)
            elif t == "probe":
                meta["probes"].setdefault(m["series"], []).append(m)
            elif t == "process":
                meta["processes"][m["name"]] = m
            elif t == "meminfo":
                meta["meminfo"][m["tag"]] = m
            elif t == "gateway":
                meta["gateways"].append(m)
    for name, run in meta["runs"].items():
        path = os.path.join(out, run["raw"])
        try:
            with open(path) as f:
                run["report"] = json.load(f)
        except (OSError, ValueError) as e:
            run["report"] = None
            run["report_error"] = str(e)
    return meta


def failures(run):
    """What a run reported as failed: a list of strings (empty: clean)."""
    out = []
    if run.get("rc", 0) != 0:
        out.append("exit status %d" % run["rc"])
    r = run.get("report")
    if r is None:
        out.append("no report (%s)" % run.get("report_error", "missing"))
        return out
    if r.get("hard_timeouts"):
        out.append("hard timeout in %d process(es)" % r["hard_timeouts"])
    if r.get("procs_done") != r["config"]["procs"]:
        out.append("%s of %s load processes done" % (r.get("procs_done"), r["config"]["procs"]))
    c = r["connections"]
    if c["failed"]:
        causes = {k: v for k, v in c["failures"].items() if v}
        out.append("%d connections failed %s" % (c["failed"], causes))
    if c["dropped"]:
        out.append("%d connections dropped" % c["dropped"])
    closes = {k: v for k, v in c.get("server_closes", {}).items() if k not in ("1000",)}
    if closes:
        out.append("server closed connections %s" % closes)
    q = r["requests"]
    for k in ("errors", "missing", "bad_replies"):
        if q.get(k):
            out.append("%d request %s %s" % (q[k], k, q.get("error_codes", {}) if k == "errors" else ""))
    p = r.get("pings", {})
    unanswered = p.get("received", 0) - p.get("answered", 0) - p.get("while_closing", 0)
    if unanswered:
        out.append("pings received %d, answered %d, %d while closing" % (
            p["received"], p["answered"], p.get("while_closing", 0)))
    fo = r.get("fanout")
    if fo:
        for k in ("sub_failed", "missing", "duplicates", "out_of_order", "publish_unanswered",
                  "foreign"):
            if fo.get(k):
                out.append("fanout %s %d" % (k, fo[k]))
        if fo.get("publish_errors"):
            out.append("publish errors %s" % fo["publish_errors"])
        for i, b in enumerate(fo.get("bursts") or []):
            if b["full_delivery_us"] is None:
                out.append("burst %d: %d of %d delivered" % (i, b["delivered"], b["expected"]))
    return out


def proc_kind(name):
    if name.startswith("gw") or name == "solo":
        return "gateway"
    if name.startswith("wk"):
        return "worker"
    if name.startswith("bare"):
        return "bare"
    return "other"


def usage(meta, name):
    """CPU seconds and RSS (kB) of each server process around a run."""
    before = meta["samples"].get(name + ":before", {})
    after = meta["samples"].get(name + ":after", {})
    procs = {}
    for key, a in after.items():
        b = before.get(key)
        if not b:
            continue
        procs[a["proc"]] = {"cpu_s": round(a["cpu_s"] - b["cpu_s"], 2),
                            "rss_kb_before": b["rss_kb"], "rss_kb_after": a["rss_kb"]}
    kinds = {}
    for p, u in procs.items():
        k = kinds.setdefault(proc_kind(p), {"cpu_s": 0.0, "rss_kb_after": 0})
        k["cpu_s"] = round(k["cpu_s"] + u["cpu_s"], 2)
        k["rss_kb_after"] += u["rss_kb_after"]
    return {"procs": procs, "by_kind": kinds}


def fit(xs, ys):
    """Least-squares slope and intercept."""
    n = len(xs)
    if n < 2:
        return None, None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None, None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


def rep(meta, name):
    run = meta["runs"].get(name)
    return run.get("report") if run else None


def pct(h):
    return {k: h.get(k) for k in ("count", "p50", "p90", "p99", "p99_9", "max")}


class Figures:
    def __init__(self):
        self.rows = []

    def add(self, fid, what, value, unit, target=None, op=None, note="", scenario=""):
        met = None
        if value is not None and target is not None:
            met = value >= target if op == ">=" else value <= target if op == "<=" else \
                value < target
        self.rows.append({"id": fid, "what": what, "value": value, "unit": unit,
                          "target": target, "op": op, "met": met, "note": note,
                          "scenario": scenario})


def suite_figures(meta, F):
    r = rep(meta, "storm_empty")
    if r:
        F.add("storm_empty", "new connections/s from empty (%d gateways)"
              % meta["env"].get("gateways", 1), r["connections"]["accepted_per_s"], "conn/s",
              20000, ">=", "handshake p50 %.1f ms, p99 %.1f ms" %
              (r["handshake_us"]["p50"] / 1e3, r["handshake_us"]["p99"] / 1e3), "storm_empty")
    probes = [rep(meta, p["raw"][4:-5]) for p in meta["probes"].get("steps_plain", [])]
    probes = [p for p in probes if p]
    if probes:
        rates = [p["connections"]["accepted_per_s"] for p in probes]
        open_n = meta["probes"]["steps_plain"][0]["open"]
        F.add("storm_open", "new connections/s with %d open, one gateway process (median of %d)"
              % (open_n, len(rates)), statistics.median(rates), "conn/s", 15000, ">=",
              "runs: " + ", ".join("%.0f" % x for x in rates), "steps_plain-probe*")
    r = rep(meta, "storm_auth")
    if r:
        F.add("storm_auth", "HS256-authenticated connections/s (auth worker, %d gateways)"
              % meta["env"].get("gateways", 1), r["connections"]["accepted_per_s"], "conn/s",
              10000, ">=", "auth p50 %.1f ms, p99 %.1f ms" %
              (r["auth_us"]["p50"] / 1e3, r["auth_us"]["p99"] / 1e3), "storm_auth")
    for series, label in (("steps_auth", "idle authenticated"), ("steps_plain", "idle")):
        st = meta["steps"].get(series)
        if not st or len(st) < 2:
            continue
        top = st[-1]
        per = (top["rss_kb"] - st[0]["rss_kb"]) * 1024.0 / top["open"] if top["open"] else None
        slope, _ = fit([s["open"] for s in st], [s["rss_kb"] * 1024.0 for s in st])
        if series == "steps_auth":
            F.add("mem_auth", "gateway RSS per %s connection at %d (one process)" %
                  (label, top["open"]), per, "bytes", 2048, "<=",
                  "slope over the steps %.0f B/conn; RSS %.1f MB at 0, %.1f MB at %d" %
                  (slope or 0, st[0]["rss_kb"] / 1024, top["rss_kb"] / 1024, top["open"]),
                  series)
        else:
            F.add("mem_plain", "gateway RSS per %s (unauthenticated) connection at %d" %
                  (label, top["open"]), per, "bytes", None, None,
                  "slope %.0f B/conn" % (slope or 0), series)
    rj, rr, rb = rep(meta, "echo_json"), rep(meta, "echo_raw"), rep(meta, "echo_bare")
    bare = rb["requests"]["round_trips_per_s"] if rb else None
    if rj:
        v = rj["requests"]["round_trips_per_s"]
        F.add("echo_json", "echo through a worker, closed loop, JSON 64 B", v, "rt/s", 60000,
              ">=", "p50 %.2f ms, p99 %.2f ms" % (rj["latency_us"]["p50"] / 1e3,
                                                  rj["latency_us"]["p99"] / 1e3), "echo_json")
        if bare:
            F.add("echo_ratio", "echo JSON through a worker / bare lws echo (same run)",
                  v / bare, "ratio", 0.70, ">=", "", "echo_json/echo_bare")
    if rr:
        v = rr["requests"]["round_trips_per_s"]
        F.add("echo_raw", "echo through a worker, closed loop, raw 64 B", v, "rt/s",
              note="ratio to bare %.2f" % (v / bare) if bare else "", scenario="echo_raw")
    if rb:
        F.add("echo_bare", "bare lws echo (ceiling), closed loop, raw 64 B", bare, "rt/s",
              note="%d process(es), --reuseport" % meta["env"].get("gateways", 1),
              scenario="echo_bare")
    r1, b1 = rep(meta, "echo_json_w1"), rep(meta, "echo_bare_w1")
    bare1 = b1["requests"]["round_trips_per_s"] if b1 else None
    if r1:
        v = r1["requests"]["round_trips_per_s"]
        F.add("echo_json_w1", "echo through a worker, closed loop, one request out per "
              "connection, JSON 64 B", v, "rt/s",
              note="p50 %.2f ms, p99 %.2f ms%s" % (
                  r1["latency_us"]["p50"] / 1e3, r1["latency_us"]["p99"] / 1e3,
                  "; bare lws echo %.0f rt/s, ratio %.2f" % (bare1, v / bare1) if bare1 else ""),
              scenario="echo_json_w1")
    for name, label, target, what in (
            ("open_json", "wsgate JSON", 2.0, "the max"),
            ("open_bare", "bare echo", None, "the max"),
            ("open_json_w1", "wsgate JSON", 2.0, "the one-out max"),
            ("open_bare_w1", "bare echo", None, "the one-out max")):
        r = rep(meta, name)
        if not r:
            continue
        lat = r["latency_us"]
        F.add(name, "open loop at half %s (%s, %.0f req/s): p99" % (what, label, r["config"]["rate"]),
              lat["p99"] / 1e3, "ms", target, "<" if target else None,
              "p50 %.2f ms, p99.9 %.2f ms, max %.1f ms; achieved %.0f rt/s" %
              (lat["p50"] / 1e3, lat["p99_9"] / 1e3, lat["max"] / 1e3,
               r["requests"]["round_trips_per_s"]), name)
    ngw = meta["env"].get("gateways", 1)
    # the targets are for one gateway process; the shared-port runs show
    # what spreading the subscribers over the N gateways gives
    for rate, burst, where, target in (
            ("fanout_rate", "fanout_burst", "one gateway", True),
            ("fanout_shared_rate", "fanout_shared_burst", "%d gateways on one port" % ngw, False)):
        r = rep(meta, rate)
        if r:
            fo = r["fanout"]
            F.add(rate, "fan-out deliveries/s, %s, %d subscribers (offered %.0f/s)"
                  % (where, fo["subscribers"], r["config"]["rate"] * fo["subscribers"]),
                  fo["deliveries_per_s"], "deliveries/s", 300000 if target else None,
                  ">=" if target else None,
                  "delivery p50 %.0f ms, p99 %.0f ms" % (r["delivery_us"]["p50"] / 1e3,
                                                         r["delivery_us"]["p99"] / 1e3), rate)
        r = rep(meta, burst)
        if r:
            fo = r["fanout"]
            full = [b["full_delivery_us"] for b in fo["bursts"]
                    if b["full_delivery_us"] is not None]
            first = [b["first_delivery_us"] for b in fo["bursts"]
                     if b["first_delivery_us"] is not None]
            if full:
                F.add(burst, "one publication to %d subscribers fully delivered, %s (median of %d)"
                      % (fo["subscribers"], where, len(full)), statistics.median(full) / 1e3,
                      "ms", 30.0 if target else None, "<=" if target else None,
                      "min %.1f, max %.1f ms; first subscriber median %.1f ms (kernel receive "
                      "time)" % (min(full) / 1e3, max(full) / 1e3,
                                 statistics.median(first) / 1e3 if first else float("nan")),
                      burst)

def held_figures(meta, F):
    r = rep(meta, "held")
    if not r:
        return
    c = r["connections"]
    F.add("held_conns", "connections held at once, %d gateways" % meta["env"].get("gateways"),
          c["open_max"], "conns", 100000, ">=",
          "established %d, failed %d; pings: %d received, %d answered, %d while closing" %
          (c["established"], c["failed"], r["pings"]["received"], r["pings"]["answered"],
           r["pings"].get("while_closing", 0)), "held")
    held = meta["samples"].get("held:held", {})
    before = meta["samples"].get("held:before", {})
    gw = [s for s in held.values() if proc_kind(s["proc"]) == "gateway"]
    gw0 = [s for s in before.values() if proc_kind(s["proc"]) == "gateway"]
    if gw:
        tot = sum(s["rss_kb"] for s in gw)
        tot0 = sum(s["rss_kb"] for s in gw0)
        n = c["open_max"] or 1
        F.add("held_rss", "gateways' RSS in all while holding", tot / 1024.0, "MB",
              note="per gateway %s MB; %.0f B per connection over the empty gateways' %.1f MB" %
              (", ".join("%.1f" % (s["rss_kb"] / 1024.0) for s in sorted(gw, key=lambda s: s["proc"])),
               (tot - tot0) * 1024.0 / n, tot0 / 1024.0), scenario="held")
    mb, mh = meta["meminfo"].get("before"), meta["meminfo"].get("held")
    if mb and mh:
        n = c["open_max"] or 1
        F.add("held_box", "box MemAvailable drop while holding", (mb["mem_available_kb"] -
              mh["mem_available_kb"]) / 1024.0, "MB",
              note="%.1f KB per connection (both ends, gateways, load tool, kernel; other "
              "users of the box move it too); kernel slab %.0f -> %.0f MB (unreclaimable %.0f -> "
              "%.0f MB, %.1f KB per connection); %s"
              % ((mb["mem_available_kb"] - mh["mem_available_kb"]) / n, mb["slab_kb"] / 1024.0,
                 mh["slab_kb"] / 1024.0, mb.get("sunreclaim_kb", 0) / 1024.0,
                 mh.get("sunreclaim_kb", 0) / 1024.0,
                 (mh.get("sunreclaim_kb", 0) - mb.get("sunreclaim_kb", 0)) / n,
                 mh["sockstat_tcp"]), scenario="held")


def fmt(v, unit):
    if v is None:
        return "—"
    if unit in ("ratio",):
        return "%.2f" % v
    if unit in ("ms",):
        return "%.2f ms" % v if v < 10 else "%.0f ms" % v
    if unit == "MB":
        return "%.0f MB" % v
    if unit == "bytes":
        return "%.0f B" % v
    if v >= 10000:
        return "%.1fk %s" % (v / 1000.0, unit)
    return "%.0f %s" % (v, unit)


def fmt_target(row):
    if row["target"] is None:
        return ""
    t = row["target"]
    return "%s %s" % (row["op"], fmt(t, row["unit"]))


# ------------------------------------------------------------ plots ---

def plots(out, meta, mode):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    pdir = os.path.join(out, "plots")
    os.makedirs(pdir, exist_ok=True)
    plt.rcParams.update({"font.size": 8})

    def save(fig, name):
        fig.tight_layout()
        p = os.path.join(pdir, name)
        fig.savefig(p, dpi=80)
        plt.close(fig)
        made.append(p)

    def curve(ax, h, label, style="-", color=None):
        if not h or not h.get("count"):
            return
        xs = [-math.log10(1 - q / 100.0) for _, q in PCTS]
        ys = [h[k] / 1e3 for k, _ in PCTS]
        xs.append(max(xs[-1] + 0.5, math.log10(h["count"]) if h["count"] > 1 else xs[-1] + 0.5))
        ys.append(h["max"] / 1e3)
        ax.plot(xs, ys, style, marker="o", markersize=3, label=label, color=color)

    def nines(ax):
        ax.set_xticks([-math.log10(1 - q / 100.0) for _, q in PCTS])
        ax.set_xticklabels(["50%", "90%", "99%", "99.9%"])
        ax.set_yscale("log")
        ax.set_xlabel("percentile (the last point: max)")
        ax.grid(True, which="both", alpha=0.3)

    if mode != "held":
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
        for name, label, style, color in (
                ("echo_json", "wsgate JSON, closed loop", "-", "tab:blue"),
                ("echo_bare", "bare echo, closed loop", "-", "tab:orange"),
                ("open_json", "wsgate JSON, open loop at half max", "--", "tab:blue"),
                ("open_bare", "bare echo, open loop at half max", "--", "tab:orange"),
                ("open_json_w1", "wsgate JSON, open loop at half the one-out max", ":",
                 "tab:blue"),
                ("open_bare_w1", "bare echo, open loop at half the one-out max", ":",
                 "tab:orange")):
            r = rep(meta, name)
            if r:
                lab = label + (" (%.0f/s)" % r["config"]["rate"] if r["config"]["rate"] else "")
                curve(a1, r["latency_us"], lab, style, color)
        a1.axhline(2.0, color="grey", linestyle=":", linewidth=0.8)
        a1.set_title("echo round-trip latency (64 B)")
        a1.set_ylabel("ms")
        nines(a1)
        a1.legend(fontsize=6)
        for name, label in (("fanout_rate", "publish phase, one gateway"),
                            ("fanout_burst", "bursts, one gateway"),
                            ("fanout_shared_rate", "publish phase, gateways on one port"),
                            ("fanout_shared_burst", "bursts, gateways on one port")):
            r = rep(meta, name)
            if r and r.get("delivery_us"):
                curve(a2, r["delivery_us"], "%s, %d subscribers" % (label,
                                                                   r["fanout"]["subscribers"]))
        a2.axhline(30.0, color="grey", linestyle=":", linewidth=0.8)
        a2.set_title("fan-out: publish to delivery")
        a2.set_ylabel("ms")
        nines(a2)
        a2.legend(fontsize=6)
        save(fig, "latency.png")

        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        for series, label in (("steps_plain", "plain"), ("steps_auth", "HS256 auth")):
            st = [s for s in meta["steps"].get(series, []) if s["k"] > 0]
            xs, ys = [], []
            for s in st:
                r = rep(meta, s["raw"][4:-5])
                if r:
                    xs.append(s["open"] - r["config"]["conns"])
                    ys.append(r["connections"]["accepted_per_s"] / 1e3)
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label="%s, steps of %d" %
                        (label, st[0]["open"]))
        pr = meta["probes"].get("steps_plain", [])
        px = [p["open"] for p in pr if rep(meta, p["raw"][4:-5])]
        py = [rep(meta, p["raw"][4:-5])["connections"]["accepted_per_s"] / 1e3 for p in pr
              if rep(meta, p["raw"][4:-5])]
        if px:
            ax.plot(px, py, "x", markersize=6, label="plain, %d more with %d open" %
                    (rep(meta, pr[0]["raw"][4:-5])["config"]["conns"], px[0]))
        ax.axhline(15, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel("connections already open on the gateway process")
        ax.set_ylabel("new connections/s (thousands)")
        ax.set_title("handshake rate against connections open (one process)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
        save(fig, "handshake_rate.png")

        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        for series, label in (("steps_auth", "idle, authenticated"), ("steps_plain", "idle, plain")):
            st = meta["steps"].get(series, [])
            if len(st) < 2:
                continue
            xs = [s["open"] for s in st]
            ys = [s["rss_kb"] / 1024.0 for s in st]
            slope, icpt = fit(xs, [y * 1024 * 1024 for y in ys])
            ax.plot(xs, ys, marker="o", markersize=3,
                    label="%s: %.0f B/conn (slope)" % (label, slope or 0))
        st = meta["steps"].get("steps_auth", [])
        if st:
            x1 = st[-1]["open"]
            y0 = st[0]["rss_kb"] / 1024.0
            ax.plot([0, x1], [y0, y0 + x1 * 2048 / 1048576.0], ":", color="grey", linewidth=0.8,
                    label="2 KB per connection")
        ax.set_xlabel("connections held")
        ax.set_ylabel("gateway RSS (MB)")
        ax.set_title("gateway memory against connections held (one process)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
        save(fig, "rss.png")
    else:
        held = meta["samples"].get("held:held", {})
        gw = sorted([s for s in held.values() if proc_kind(s["proc"]) == "gateway"],
                    key=lambda s: s["proc"])
        conns = {g["name"]: g["conns"] for g in meta["gateways"]}
        if gw:
            fig, ax = plt.subplots(figsize=(5.5, 3.2))
            ax.bar([s["proc"] for s in gw], [s["rss_kb"] / 1024.0 for s in gw])
            for i, s in enumerate(gw):
                ax.text(i, s["rss_kb"] / 1024.0, "%d conns" % conns.get(s["proc"], 0),
                        ha="center", va="bottom", fontsize=6)
            ax.set_ylabel("RSS (MB)")
            ax.set_title("held connections: RSS per gateway process")
            save(fig, "held_rss.png")
    return made


# --------------------------------------------------------- markdown ---

def scenario_line(meta, name):
    run = meta["runs"][name]
    r = run.get("report")
    if not r:
        return None
    u = usage(meta, name)["by_kind"]
    key = ""
    c = r["connections"]
    sc = r["scenario"]
    if sc in ("storm", "idle"):
        key = "%.1fk conn/s, handshake p50/p99 %.1f/%.1f ms" % (
            c["accepted_per_s"] / 1e3, r["handshake_us"]["p50"] / 1e3, r["handshake_us"]["p99"] / 1e3)
        if r["config"].get("auth"):
            key += ", auth p50/p99 %.1f/%.1f ms" % (r["auth_us"]["p50"] / 1e3,
                                                   r["auth_us"]["p99"] / 1e3)
    elif sc == "echo":
        l = r["latency_us"]
        key = "%.1fk rt/s, p50/p99/p99.9 %.2f/%.2f/%.2f ms" % (
            r["requests"]["round_trips_per_s"] / 1e3, l["p50"] / 1e3, l["p99"] / 1e3,
            l["p99_9"] / 1e3)
    elif sc == "fanout":
        fo = r["fanout"]
        l = r["delivery_us"]
        key = "%.1fk deliveries/s, delivery p50/p99 %.1f/%.1f ms, %d missing" % (
            fo["deliveries_per_s"] / 1e3, l["p50"] / 1e3, l["p99"] / 1e3, fo["missing"])
    cpu = lambda k: ("%.1f" % u[k]["cpu_s"]) if k in u else "—"  # noqa: E731
    lc = run.get("load_cpu_s")
    return "| %s | `%s` | %s | %s / %s / %s / %s | %s | %s |" % (
        name, run["cmd"].replace("|", "\\|"), key, cpu("gateway"), cpu("worker"), cpu("bare"),
        "%.1f" % lc if lc is not None else "—", run.get("loadavg", "—"),
        "; ".join(failures(run)) or "0")


def markdown(meta, F, fails, made, out):
    env = meta["env"]
    L = []
    title = {"held": "held connections", "quick": "quick run (counts too small for figures)"}.get(
        env.get("mode"), "benchmark suite")
    L.append("### wsgate %s, %s%s" % (title, env.get("date", "?"),
                                      " (%s)" % env["label"] if env.get("label") else ""))
    L.append("")
    la = env.get("loadavg", "").split()
    L.append("Machine: %d cores (%s), %.0f GiB, kernel %s; commit %s, build %s (%s). "
             "Load average at the start: **%s** (1 min), %s, %s. %d gateway process(es) on one "
             "port (`--reuseport`), %d worker(s). Command: `%s`." % (
                 env.get("nproc", 0), env.get("cpu", "?"), env.get("mem_total_kb", 0) / 1048576.0,
                 env.get("kernel", "?"), env.get("commit", "?"), env.get("build", "?"),
                 env.get("build_type", "?"), la[0] if la else "?", la[1] if len(la) > 1 else "?",
                 la[2] if len(la) > 2 else "?", env.get("gateways", 0), env.get("workers", 0),
                 env.get("cmd", "")))
    L.append("")
    L.append("| figure | result | target | met |")
    L.append("|---|---|---|---|")
    for row in F.rows:
        met = "" if row["met"] is None else ("yes" if row["met"] else "**no**")
        if env.get("mode") == "quick":
            met = "(quick)"
        res = fmt(row["value"], row["unit"])
        if row["note"]:
            res += " (%s)" % row["note"]
        L.append("| %s | %s | %s | %s |" % (row["what"], res, fmt_target(row), met))
    L.append("")
    st = meta["steps"]
    if st:
        L.append("Steps on one gateway process (each step opens connections while the earlier "
                 "ones stay open; accepted/s of that step; gateway RSS after it):")
        L.append("")
        L.append("| open after the step | plain: accepted/s | plain: RSS MB | auth: accepted/s | "
                 "auth: RSS MB |")
        L.append("|---|---|---|---|---|")
        rows = {}
        for series in ("steps_plain", "steps_auth"):
            for s in st.get(series, []):
                r = rep(meta, s["raw"][4:-5]) if s.get("raw") else None
                rows.setdefault(s["open"], {})[series] = (
                    r["connections"]["accepted_per_s"] if r else None, s["rss_kb"] / 1024.0)
        for n in sorted(rows):
            v = rows[n]
            cell = lambda s, i: ("%.1fk" % (v[s][i] / 1e3) if i == 0 else "%.1f" % v[s][i]) \
                if s in v and v[s][i] is not None else "—"  # noqa: E731
            L.append("| %d | %s | %s | %s | %s |" % (n, cell("steps_plain", 0),
                                                     cell("steps_plain", 1),
                                                     cell("steps_auth", 0), cell("steps_auth", 1)))
        L.append("")
    L.append("Every run. CPU: seconds of `utime+stime` during the run, from `/proc/PID/stat` "
             "(gateways, workers, bare echo servers) and from the shell's `times` (the load "
             "tool); load: the 1-minute load average when it started.")
    L.append("")
    L.append("| run | command | figures | CPU s gw / wk / bare / load | load | failures |")
    L.append("|---|---|---|---|---|---|")
    for name in meta["runs"]:
        if meta["runs"][name].get("interrupted"):
            continue
        line = scenario_line(meta, name)
        if line:
            L.append(line)
        else:
            L.append("| %s | `%s` | no report | | | %s |" % (
                name, meta["runs"][name].get("cmd", ""), "; ".join(failures(meta["runs"][name]))))
    L.append("")
    if fails:
        L.append("**Failures:** " + "; ".join("%s: %s" % (k, ", ".join(v)) for k, v in fails.items()))
    else:
        L.append("No run reported a failure (every connection established, no errors, nothing "
                 "missing).")
    L.append("")
    if made:
        L.append("Plots: " + ", ".join("`plots/%s`" % os.path.basename(p) for p in made) + ".")
        L.append("")
    perfdir = os.path.join(out, "perf")
    if os.path.isdir(perfdir):
        L.append("Profiles (`--perf`): " + ", ".join(
            "`perf/%s`" % f for f in sorted(os.listdir(perfdir)) if f.endswith(".txt")) + ".")
        L.append("")
    return "\n".join(L)


def main():
    if len(sys.argv) != 2:
        print("usage: bench_report.py OUT_DIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    try:
        meta = load_meta(out)
    except (OSError, ValueError, KeyError) as e:
        print("bench_report: %s: %s" % (out, e), file=sys.stderr)
        return 2
    mode = meta["env"].get("mode", "default")
    F = Figures()
    if mode == "held":
        held_figures(meta, F)
    else:
        suite_figures(meta, F)
    fails = {}
    for name, run in meta["runs"].items():
        f = failures(run)
        if f:
            fails[name] = f
    made = plots(out, meta, mode)
    summary = {
        "env": meta["env"],
        "figures": F.rows,
        "failures": fails,
        "runs": {n: {"cmd": r.get("cmd"), "rc": r.get("rc"), "raw": r.get("raw"),
                     "failures": failures(r), "usage": usage(meta, n)}
                 for n, r in meta["runs"].items()},
        "steps": meta["steps"],
        "meminfo": meta["meminfo"],
        "gateways": meta["gateways"],
        "plots": [os.path.relpath(p, out) for p in made],
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    md = markdown(meta, F, fails, made, out)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
