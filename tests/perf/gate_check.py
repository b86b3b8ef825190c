"""The regression gate (tools/perf-gate/run --bpf) passes on this build, and
it fails (exit 3) against a baseline 10 % cheaper than this build: a gate
that cannot fail would guard nothing.

Usage: gate_check.py BUILD_DIR   (exit 77 = skipped: no valgrind or not root)
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GATE = REPO / "tools" / "perf-gate" / "run"


def main():
    build = sys.argv[1]
    r = subprocess.run([str(GATE), "--bpf", "--build", build], timeout=1200)
    if r.returncode == 77:
        sys.exit(77)
    if r.returncode != 0:
        print(f"FAIL: the gate exited {r.returncode} on this build", file=sys.stderr)
        sys.exit(1)
    base = json.loads((REPO / "bench" / "gate" / "baseline.json").read_text())
    base["instructions_per_item"] = {k: v * 0.9 for k, v in base["instructions_per_item"].items()}
    with tempfile.TemporaryDirectory(prefix="clearcap-gate-check-") as d:
        cheaper = os.path.join(d, "baseline.json")
        with open(cheaper, "w") as f:
            json.dump(base, f)
        r = subprocess.run([str(GATE), "--build", build, "--baseline", cheaper], timeout=1200,
                           stdout=subprocess.DEVNULL)
        if r.returncode != 3:
            print(f"FAIL: the gate exited {r.returncode}, not 3, against a baseline 10 % cheaper", file=sys.stderr)
            sys.exit(1)
    print("ok")


main()
