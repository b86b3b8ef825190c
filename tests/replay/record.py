#!/usr/bin/env python3
"""Records the replay tier's capture files (root): one small capture per
module, each of one real client fetching one page from our own nginx over
TLS, and their golden JSON lines (clearcap export of the file).

    sudo tests/replay/record.py            # rewrites tests/replay/data/*

Run it when a record type or the JSON schema changes on purpose; review the
diff of the golden files like code. tests/replay/test_replay.py checks that
export of the committed files still gives exactly the golden lines.
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bpf"))
import harness as h  # noqa: E402

DATA = os.path.join(HERE, "data")
PATH = "/replay-token"


def clients(port):
    url = f"https://127.0.0.1:{port}{PATH}"
    nss_client = os.path.join(os.path.dirname(h.clearcap_bin()), "testprogs", "nss_client")
    return {
        "tls": ["curl", "-sk", "--http1.1", url],
        "gnutls": ["wget", "-q", "-O", "-", "--no-check-certificate", url],
        "nss": [nss_client, "127.0.0.1", str(port), PATH, "--tls1.3"],
    }


def main():
    os.makedirs(DATA, exist_ok=True)
    with h.Nginx() as ngx:
        for module, argv in clients(ngx.port).items():
            ccap = os.path.join(DATA, f"{module}.ccap")
            if os.path.exists(ccap):
                os.unlink(ccap)
            with h.Clearcap(["-w", ccap], module=module) as cap:
                out = subprocess.run(argv, capture_output=True, timeout=30)
                assert h.RESPONSE_MARKER.encode() in out.stdout, out
                # The client's events are in the rings; the stop drains them.
            assert cap.returncode == 0 and cap.losses == 0, cap.stderr
            with tempfile.TemporaryDirectory() as tmp:
                res = h.clearcap_run("export", ccap, "-o", os.path.join(DATA, f"{module}.golden.jsonl"))
                assert res.returncode == 0, res.stderr
            print(f"{module}: {os.path.getsize(ccap)} bytes")


if __name__ == "__main__":
    main()
