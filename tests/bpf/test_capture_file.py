"""clearcap tls -w: curl -> our nginx recorded to a capture file, then
clearcap export to pcapng (judged by tshark), JSON lines and HAR, each checked
for this test's token and nginx's response."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()


class CaptureFileTest(unittest.TestCase):

    def test_record_then_export(self):
        token = h.new_token()
        path = f"/{token}"
        with tempfile.TemporaryDirectory(prefix="clearcap-capfile-") as d:
            ccap = os.path.join(d, "cap.ccap")
            with h.Nginx() as ngx:
                # Both ends of the curl -> nginx connection with their
                # addresses (curl's from the syscall tracepoints, attached
                # from the start): the export writes the flow once.
                with h.Clearcap(["-w", ccap, "--syscall-fd", "always"]) as cap:
                    curl = h.start_process(
                        self, ["curl", "-sk", "--http1.1", f"https://127.0.0.1:{ngx.port}{path}"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    out, _ = h.finish(curl, what="curl")
                    self.assertEqual(out.decode(), h.RESPONSE_MARKER + "\n")
                    # The writer closes a frame at most ~1 s after its first
                    # record, while clearcap keeps running.
                    h.wait_for(lambda: token.encode() in subprocess.run(
                        ["zstd", "-q", "-d", "-c", ccap], capture_output=True).stdout,
                        10, what="the token in a complete frame of the running capture")
            # SIGINT drained and closed the file.
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
            self.assertEqual(cap.events, [], "with -w nothing goes to stdout")
            self.assertRegex(cap.stderr, rf"output {re.escape(ccap)}: 0 write errors, 0 bytes and 0 events "
                             "not delivered")
            zt = subprocess.run(["zstd", "-t", ccap], capture_output=True, timeout=60)
            self.assertEqual(zt.returncode, 0, zt.stderr)

            # pcapng: tshark dissects HTTP from the synthesized TCP.
            pcap = os.path.join(d, "cap.pcapng")
            ex = h.clearcap_run("export", ccap, "-o", pcap)
            self.assertEqual(ex.returncode, 0, ex.stderr.decode())
            ts = subprocess.run(["tshark", "-r", pcap, "-Y", "http", "-T", "fields",
                                 "-e", "http.request.uri", "-e", "http.response.code",
                                 "-e", "frame.comment"],
                                capture_output=True, timeout=120)
            self.assertEqual(ts.returncode, 0, ts.stderr.decode())
            rows = [line.split("\t") for line in ts.stdout.decode().splitlines()]
            req = [r for r in rows if r[0] == path]
            self.assertEqual(len(req), 1, ts.stdout.decode()[-3000:])
            self.assertRegex(req[0][2], r"^pid=\d+ comm=(curl|nginx)$")
            # The response on the same TCP stream as the request.
            st = subprocess.run(["tshark", "-r", pcap, "-Y", f'http.request.uri == "{path}"', "-T", "fields",
                                 "-e", "tcp.stream"], capture_output=True, timeout=120)
            stream = st.stdout.decode().strip()
            self.assertTrue(stream, st.stderr.decode())
            rs = subprocess.run(["tshark", "-r", pcap, "-Y", f"tcp.stream == {stream} && http.response",
                                 "-T", "fields", "-e", "http.response.code", "-e", "http.content_length"],
                                capture_output=True, timeout=120)
            self.assertEqual(rs.stdout.decode().split("\t")[0], "200", rs.stderr.decode())
            # The body, reassembled by tshark from the synthesized segments.
            fu = subprocess.run(["tshark", "-r", pcap, "-q", "-z", f"follow,tcp,ascii,{stream}"],
                                capture_output=True, timeout=120)
            self.assertIn(h.RESPONSE_MARKER, fu.stdout.decode(errors="replace"))

            # JSON lines: every line strict JSON; curl's request is there.
            jsonl = os.path.join(d, "cap.jsonl")
            ex = h.clearcap_run("export", ccap, "-o", jsonl)
            self.assertEqual(ex.returncode, 0, ex.stderr.decode())
            with open(jsonl, "rb") as f:
                events = [h.parse_json_line(line.rstrip(b"\n")) for line in f]
            mine = h.matching(events, f"GET {path} HTTP/1.1\r\n", pid=curl.pid, direction="write")
            self.assertEqual(len(mine), 1, "\n".join(map(h.describe, events[-20:])))
            h.check_event_schema(self, mine[0])
            self.assertTrue(h.matching(events, h.RESPONSE_MARKER, pid=curl.pid, direction="read"))

            # HAR: a JSON document with the request and its response.
            har = os.path.join(d, "cap.har")
            ex = h.clearcap_run("export", ccap, "-o", har)
            self.assertEqual(ex.returncode, 0, ex.stderr.decode())
            with open(har) as f:
                doc = json.load(f)
            entries = [e for e in doc["log"]["entries"] if e["request"]["url"].endswith(path)]
            self.assertEqual(len(entries), 1, json.dumps(doc)[-3000:])
            e = entries[0]
            self.assertEqual(e["request"]["method"], "GET")
            self.assertEqual(e["response"]["status"], 200)
            self.assertIn(h.RESPONSE_MARKER, e["response"]["content"]["text"])
            self.assertGreaterEqual(e["timings"]["wait"], 0)

    def test_rotation_by_size_keeps_n_readable_files(self):
        # --eventroratesize is in MiB. Random upload bodies do not compress,
        # so ~6 MiB of plaintext makes several 1 MiB pieces.
        token = h.new_token()
        with tempfile.TemporaryDirectory(prefix="clearcap-caprot-") as d:
            ccap = os.path.join(d, "cap.ccap")
            with h.Nginx() as ngx:
                with h.Clearcap(["-w", ccap, "--eventroratesize", "1", "--rotate-keep", "3"]) as cap:
                    for i in range(3):
                        src = os.path.join(d, f"body-{i}")
                        with open(src, "wb") as f:
                            f.write(os.urandom(2 << 20))
                        curl = h.start_process(
                            self, ["curl", "-sk", "--http1.1", "-T", src, "-o", "/dev/null", "-w", "%{http_code}",
                                   f"https://127.0.0.1:{ngx.port}/upload/{token}-{i}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                        out, _ = h.finish(curl, what="curl upload")
                        self.assertIn(out.decode(), ("201", "204"), out)
                    # A last small request: it must be in a kept piece.
                    path = f"/{token}-last"
                    curl = h.start_process(
                        self, ["curl", "-sk", "--http1.1", f"https://127.0.0.1:{ngx.port}{path}"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    out, _ = h.finish(curl, what="curl")
                    self.assertEqual(out.decode(), h.RESPONSE_MARKER + "\n")
                    h.wait_for(lambda: path.encode() in subprocess.run(
                        ["zstd", "-q", "-d", "-c", ccap], capture_output=True).stdout,
                        15, what="the last request in a complete frame of the current file")
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            self.assertRegex(cap.stderr, rf"output {re.escape(ccap)}: 0 write errors, 0 bytes and 0 events "
                             "not delivered")
            names = sorted(os.listdir(d))
            rotated = [n for n in names if re.fullmatch(r"cap\.\d{8}-\d{6}(-\d+)?\.ccap", n)]
            self.assertGreaterEqual(len(rotated), 1, names)
            self.assertLessEqual(len(rotated), 3, f"--rotate-keep 3: {names}")
            self.assertIn("cap.ccap", names)
            pieces = [os.path.join(d, n) for n in rotated + ["cap.ccap"]]
            for p in pieces:
                zt = subprocess.run(["zstd", "-t", p], capture_output=True, timeout=60)
                self.assertEqual(zt.returncode, 0, (p, zt.stderr))
                # Each piece is a capture file on its own (its own header).
                one = os.path.join(d, "one.jsonl")
                ex = h.clearcap_run("export", p, "-o", one)
                self.assertEqual(ex.returncode, 0, (p, ex.stderr.decode()))
            jsonl = os.path.join(d, "all.jsonl")
            ex = h.clearcap_run("export", *pieces, "-o", jsonl)
            self.assertEqual(ex.returncode, 0, ex.stderr.decode())
            with open(jsonl, "rb") as f:
                events = [h.parse_json_line(line.rstrip(b"\n")) for line in f]
            self.assertTrue(h.matching(events, f"GET {path} HTTP/1.1\r\n", direction="write"),
                            "\n".join(map(h.describe, events[-20:])))
            self.assertTrue(any(h.has(e, token) for e in events))

    def test_export_errors(self):
        with tempfile.TemporaryDirectory(prefix="clearcap-capfile-") as d:
            missing = os.path.join(d, "missing.ccap")
            ex = h.clearcap_run("export", missing, "-o", os.path.join(d, "x.pcapng"))
            self.assertNotEqual(ex.returncode, 0)
            self.assertIn("missing.ccap", ex.stderr.decode())
            bogus = os.path.join(d, "bogus.ccap")
            with open(bogus, "wb") as f:
                f.write(b"not a capture")
            ex = h.clearcap_run("export", bogus, "-o", os.path.join(d, "x.pcapng"))
            self.assertEqual(ex.returncode, 2)
            self.assertIn("not a clearcap capture file", ex.stderr.decode())
            ex = h.clearcap_run("export", bogus, "-o", os.path.join(d, "x.weird"))
            self.assertEqual(ex.returncode, 2)
            self.assertIn("--format", ex.stderr.decode())


if __name__ == "__main__":
    unittest.main()
