"""-m pcap under load: ten concurrent TLS 1.2 and 1.3 connections (curl and
Python) and a 900 KB download, five runs; tshark decrypts every request and
every response from the pcapng alone, every run. Packets of a connection
must be in capture order in the file, and packets that GSO makes larger
than 64 KiB on lo must be kept whole (default snap length 262144)."""

import os
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()

PY_CLIENT = r"""
import ssl, sys, urllib.request
port, path, ver = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
v = ssl.TLSVersion.TLSv1_2 if ver == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.minimum_version = ctx.maximum_version = v
urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=30).read()
"""


class PcapLoadTest(unittest.TestCase):

    def one_run(self, ngx, tmp, n):
        out = os.path.join(tmp, f"run{n}.pcapng")
        paths = []
        with h.Clearcap(["-m", "pcap", "-i", "lo", "-w", out, f"tcp port {ngx.port}"]) as cap:
            procs = []
            for i in range(10):
                ver = "1.2" if i % 2 else "1.3"
                path = f"/{h.new_token()}-{i}"
                paths.append(path)
                if i < 5:
                    tls = ["--tlsv1.2", "--tls-max", "1.2"] if ver == "1.2" else ["--tlsv1.3"]
                    argv = ["curl", "-sk", "--http1.1", *tls, f"https://127.0.0.1:{ngx.port}{path}"]
                else:
                    argv = [h.test_python(), "-c", PY_CLIENT, str(ngx.port), path, ver]
                procs.append(h.start_process(self, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            big = h.start_process(self, ["curl", "-sk", "--http1.1", "-o", "/dev/null", "-w", "%{size_download}",
                                         f"https://127.0.0.1:{ngx.port}/upload/big"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for p in procs:
                h.finish(p, what="client")
            size, _ = h.finish(big, what="download")
            self.assertEqual(int(size), 900_000)
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        self.assertRegex(cap.stderr, r"written without keys \(grace period over or limit\): 0 ")
        self.assertRegex(cap.stderr, r"0 cut to the snap length")
        requests = h.tshark_read(out, tmp, "http.request", fields=["http.request.uri"]).split()
        responses = h.tshark_read(out, tmp, "http.response", fields=["http.response_for.uri"]).split()
        missing_req = [p for p in paths + ["/upload/big"] if p not in requests]
        missing_resp = [p for p in paths + ["/upload/big"]
                        if not any(r.endswith(p) for r in responses)]
        h.log(f"run {n}: {len(requests)} requests and {len(responses)} responses decrypted")
        # In file order, each connection's packets are in capture order.
        last = {}
        for row in h.tshark_read(out, tmp, "tcp", fields=["tcp.stream", "frame.time_epoch"]).splitlines():
            stream, t = row.split("\t")
            self.assertGreaterEqual(float(t), last.get(stream, 0.0), f"run {n}: stream {stream} out of order")
            last[stream] = float(t)
        self.assertEqual((missing_req, missing_resp), ([], []), f"run {n}: not decrypted")

    def test_every_request_and_response_decrypts_every_run(self):
        tmp = tempfile.mkdtemp(prefix="clearcap-pcapload-")
        src = os.path.join(tmp, "big")
        with open(src, "wb") as f:
            f.write(os.urandom(900_000))
        with h.Nginx() as ngx:
            put = h.start_process(self, ["curl", "-sk", "--http1.1", "-T", src, "-o", "/dev/null",
                                         f"https://127.0.0.1:{ngx.port}/upload/big"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            h.finish(put, what="upload")
            for n in range(5):
                self.one_run(ngx, tmp, n)


if __name__ == "__main__":
    unittest.main()
