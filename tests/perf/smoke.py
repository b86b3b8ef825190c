"""Smoke run of the speed tools (label perf): tools/perf-harness/run --quick
and build/bench/probe_cost --quick must run to the end and write valid JSON
with every condition present. No absolute number is asserted (machines here
are shared and noisy); the numbers themselves belong in docs/performance.md.

Usage: smoke.py harness|probe_cost BUILD_DIR   (exit 77 = skipped, not root)
"""
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def positive(v, what):
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
        fail(f"{what}: expected a positive number, got {v!r}")


def main():
    which, build = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            fail("perf smoke tests must run as root under CI")
        print("SKIP: not root: BPF programs need root", file=sys.stderr)
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="clearcap-perf-smoke-") as d:
        out = os.path.join(d, "out.json")
        if which == "harness":
            argv = [str(REPO / "tools" / "perf-harness" / "run"), "--quick", "--build", build, "--json", out]
        else:
            argv = [os.path.join(build, "bench", "probe_cost"), "--quick", "--json", out]
        r = subprocess.run(argv, timeout=240)
        if r.returncode == 77:
            sys.exit(77)
        if r.returncode != 0:
            fail(f"{argv[0]} exited {r.returncode}")
        with open(out) as f:
            data = json.load(f)
    if which == "harness":
        res = data["results"]
        for url in ("small", "64k", "small@rate", "small@h2", "64k@h2"):
            rows = res.get(url) or fail(f"no results for /{url}")
            for cond in ("baseline", "floor", "clearcap-json"):
                row = rows.get(cond) or fail(f"/{url}: no {cond} row")
                positive(row["rps_median"], f"/{url} {cond} rps")
                positive(row["ratio_to_floor"], f"/{url} {cond} ratio_to_floor")
            positive(rows["clearcap-json"]["events_per_s_median"], f"/{url} clearcap events/s")
            positive(rows["clearcap-json"]["peak_rss_kib_max"], f"/{url} clearcap peak RSS")
            positive(rows["clearcap-json"]["prog_ns_per_call_median"], f"/{url} clearcap BPF program ns per call")
            positive(rows["floor"]["prog_ns_per_call_median"], f"/{url} floor BPF program ns per call")
            positive(rows["baseline"]["worker_cpu_us_per_req_median"], f"/{url} nginx CPU us per request")
        # The regression gate: a run passes against itself and fails (exit 3)
        # against a copy whose clearcap ratio was 50% better.
        run = str(REPO / "tools" / "perf-harness" / "run")
        # The gate's logic is what is tested here: the files claim a quiet
        # machine (the smoke run's own load is whatever CI's is); a file
        # taken under load > 2 must be refused.
        with tempfile.TemporaryDirectory(prefix="clearcap-perf-gate-") as d:
            same, better, busy = (os.path.join(d, n) for n in ("same.json", "better.json", "busy.json"))
            data["meta"]["loadavg_start"] = data["meta"]["loadavg_end"] = [0.5, 0.5, 0.5]
            with open(same, "w") as f:
                json.dump(data, f)
            res["small"]["clearcap-json"]["ratio_to_floor"] *= 1.5
            with open(better, "w") as f:
                json.dump(data, f)
            # A baseline from before the floor moved to clearcap's places
            # (no floor_placement): its ratios to the floor are not compared.
            old = os.path.join(d, "old-floor.json")
            del data["meta"]["floor_placement"]
            for rows in res.values():
                rows.pop("floor-symbol", None)
            with open(old, "w") as f:
                json.dump(data, f)
            data["meta"]["floor_placement"] = "auto"
            data["meta"]["loadavg_end"] = [3.0, 2.0, 1.0]
            with open(busy, "w") as f:
                json.dump(data, f)
            if subprocess.run([run, "--check", same, "--results", same]).returncode != 0:
                fail("--check failed a run compared with itself")
            if subprocess.run([run, "--check", better, "--results", same]).returncode != 3:
                fail("--check did not exit 3 on a 33% drop of a ratio")
            if subprocess.run([run, "--check", busy, "--results", same]).returncode != 1:
                fail("--check accepted a baseline taken under load 3")
            if subprocess.run([run, "--check", old, "--results", same]).returncode != 0:
                fail("--check compared ratios to a floor at other places (a 33% better baseline ratio)")
    else:
        names = {r["name"]: r for r in data["results"]}
        for n in ("fn/none/1k", "fn/floor/1k", "fn/clearcap/1k", "fn/clearcap-wake/1k", "ssl/floor/1k",
                  "ssl/clearcap/1k", "ssl/clearcap/16k"):
            row = names.get(n) or fail(f"no {n} row")
            positive(row["ns_per_call_median"], f"{n} ns/call")
        for n in ("fn/clearcap/1k", "ssl/clearcap/1k"):
            positive(names[n]["events"], f"{n} events")
    print("ok")


main()
