"""/usr/bin/python3's ssl module (SSL_write_ex / SSL_read_ex) -> our nginx,
with the probes where they cost least (the function SSL_*_ex calls) and at
the functions' own entries (--probe-placement symbol)."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()


class PythonClientTest(unittest.TestCase):

    def test_python_ssl_ex_functions(self):
        self._check(["--probe-placement", "symbol"], "SSL_write_ex", "SSL_read_ex")

    def test_python_ssl_ex_functions_hooked_where_cheaper(self):
        self._check([], h.SYSTEM_SSL_WRITE, h.SYSTEM_SSL_READ)

    def _check(self, args, write_source, read_source):
        with h.Nginx() as ngx:
            with h.Clearcap(args) as cap:
                runs = []
                for tls in ("1.3", "1.2"):
                    token = h.new_token()
                    path = f"/{token}"
                    proc = h.start_process(
                        self, h.py_client_argv(ngx.port, path, "--token", token, "--tls", tls),
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    out, _ = h.finish(proc, what=f"python client (TLS {tls})")
                    lines = [json.loads(x) for x in out.decode().splitlines()]
                    connected, done = lines[0], lines[-1]
                    self.assertEqual(connected["pid"], proc.pid)
                    self.assertEqual(connected["tls_version"], f"TLSv{tls}")
                    self.assertEqual(done["status"], 200, done)
                    self.assertEqual(done["body"], h.RESPONSE_MARKER + "\n")
                    runs.append((tls, token, path, proc.pid, connected["local_port"], done["sent"]))

                for tls, token, path, pid, port, sent in runs:
                    req = f"GET {path} HTTP/1.1\r\n"
                    cap.wait_for(
                        lambda evs: (h.matching(evs, req, pid=pid, direction="write")
                                     and h.matching(evs, h.RESPONSE_MARKER, pid=pid, direction="read")),
                        what=f"python (TLS {tls}) write with the token and read of the marker")

        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        events = cap.events
        for tls, token, path, pid, port, sent in runs:
            with self.subTest(tls=tls):
                req = f"GET {path} HTTP/1.1\r\n"
                w = h.matching(events, req, pid=pid, direction="write")
                r = h.matching(events, h.RESPONSE_MARKER, pid=pid, direction="read")
                self.assertEqual(len(w), 1, "\n".join(map(h.describe, w)))
                w, r = w[0], r[0]
                for ev in (w, r):
                    h.check_event_schema(self, ev)
                    self.assertTrue(ev["comm"].startswith("python"), h.describe(ev))
                    self.assertEqual(ev["pid"], pid)
                    self.assertEqual(ev["tid"], pid)
                    self.assertEqual(ev["uid"], os.geteuid())
                    self.assertEqual(ev["family"], "ipv4")
                self.assertEqual(w["source"], write_source, h.describe(w))
                self.assertEqual(r["source"], read_source, h.describe(r))
                self.assertEqual((w["src_port"], w["dst_port"]), (port, ngx.port), h.describe(w))
                self.assertEqual((r["src_port"], r["dst_port"]), (ngx.port, port), h.describe(r))
                self.assertEqual(w["type"], "http1_request", h.describe(w))
                self.assertEqual(w["conn_id"], r["conn_id"])
                # no other library entry point reported the same bytes again
                mine = h.matching(events, None, pid=pid)
                self.assertEqual({e["source"] for e in mine}, {write_source, read_source},
                                 "\n".join(map(h.describe, mine)))
                _, data = h.reassemble(events, w["conn_id"], "write", require_start_zero=True)
                self.assertEqual(len(data), sent)
                self.assertTrue(data.startswith(req.encode()), data[:200])
                self.assertIn(f"X-Clearcap-Token: {token}\r\n".encode(), data)
                _, data = h.reassemble(events, r["conn_id"], "read", require_start_zero=True)
                self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:200])
                self.assertTrue(data.endswith(h.RESPONSE_MARKER.encode() + b"\n"), data)


if __name__ == "__main__":
    unittest.main()
