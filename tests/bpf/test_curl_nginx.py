"""curl -> our own nginx over HTTPS (TLS 1.3 and TLS 1.2), captured system-wide.

Both ends of one connection are checked: the request (with this test's token)
in curl's write and nginx's read, the response marker in nginx's write and
curl's read, the address tuples, pids, timestamps, seq-ordered streams, and
the clean summary.
"""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()


class CurlNginxTest(unittest.TestCase):

    def _run(self, tls_args, expect_proto):
        token = h.new_token()
        path = f"/{token}"
        request_line = f"GET {path} HTTP/1.1\r\n"
        with h.Nginx() as ngx:
            url = f"https://127.0.0.1:{ngx.port}{path}"
            # curl runs TLS over a BIO of its own: its addresses come from the
            # syscall tracepoints, attached from the start with "always".
            with h.Clearcap(["--syscall-fd", "always"]) as cap:
                t_before = time.time_ns()
                curl = h.start_process(
                    self, ["curl", "-sk", "--http1.1", *tls_args,
                           "-w", "\n%{local_port}\n", url],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, _ = h.finish(curl, what="curl")
                t_after = time.time_ns()
                body, _, port_line = out.decode().rstrip("\n").rpartition("\n")
                self.assertEqual(body, h.RESPONSE_MARKER + "\n", out)
                curl_port = int(port_line)
                cpid = curl.pid

                def four(evs):
                    cw = h.matching(evs, request_line, pid=cpid, direction="write")
                    nr = h.matching(evs, request_line, comm="nginx", direction="read")
                    nw = h.matching(evs, h.RESPONSE_MARKER, comm="nginx", direction="write",
                                    pid=lambda p: p in ngx.worker_pids)
                    cr = h.matching(evs, h.RESPONSE_MARKER, pid=cpid, direction="read")
                    if cw and nr and nw and cr:
                        return cw, nr, nw, cr
                    return None

                cap.wait_for(four, what="curl write/read and nginx read/write events")
                workers = ngx.current_workers()
                access = h.wait_for(lambda: ngx.access_log_entry(f'"GET {path} HTTP/1.1"'),
                                    5, what="nginx access log line")
                master = ngx.master_pid

        # clearcap has exited (drained) here
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, "summary must say losses: 0\n" + cap.stderr[-3000:])
        self.assertIsNotNone(cap.summary_events, "summary has no 'events: N'\n" + cap.stderr[-3000:])
        self.assertEqual(access["remote_port"], curl_port)
        self.assertEqual(access["ssl_protocol"], expect_proto)

        events = cap.events
        cw, nr, nw, cr = four(events)
        self.assertEqual(len(cw), 1, "curl's request must be captured exactly once:\n"
                         + "\n".join(map(h.describe, cw)))
        self.assertEqual(len(nr), 1, "nginx's read of the request must be captured exactly once:\n"
                         + "\n".join(map(h.describe, nr)))
        cw, nr, nw, cr = cw[0], nr[0], nw[0], cr[0]
        for ev in (cw, nr, nw, cr):
            h.check_event_schema(self, ev)
            self.assertFalse(ev["truncated"], h.describe(ev))
            self.assertGreaterEqual(ev["ts_ns"], t_before - 5_000_000_000, h.describe(ev))
            self.assertLessEqual(ev["ts_ns"], t_after + 5_000_000_000, h.describe(ev))
            self.assertEqual(ev["uid"], os.geteuid(), h.describe(ev))
            self.assertEqual(ev["family"], "ipv4", h.describe(ev))
            self.assertEqual(ev["src_ip"], "127.0.0.1", h.describe(ev))
            self.assertEqual(ev["dst_ip"], "127.0.0.1", h.describe(ev))

        # curl side: the process we started, its main thread
        self.assertEqual(cw["comm"], "curl")
        self.assertEqual(cr["comm"], "curl")
        self.assertEqual(cw["pid"], cpid)
        self.assertEqual(cw["tid"], cpid)
        self.assertEqual(cr["pid"], cpid)
        # nginx side: the worker, a child of the master we started
        self.assertIn(nr["pid"], workers, f"nginx read pid {nr['pid']} not a worker of {master}")
        self.assertEqual(nr["pid"], access["pid"], "nginx worker pid per access log")
        self.assertEqual(nw["pid"], nr["pid"])

        # tuples follow the data flow
        for ev in (cw, nr):   # request: curl -> nginx
            self.assertEqual((ev["src_port"], ev["dst_port"]), (curl_port, ngx.port), h.describe(ev))
            self.assertEqual(ev["src"], f"127.0.0.1:{curl_port}")
            self.assertEqual(ev["dst"], f"127.0.0.1:{ngx.port}")
        for ev in (nw, cr):   # response: nginx -> curl
            self.assertEqual((ev["src_port"], ev["dst_port"]), (ngx.port, curl_port), h.describe(ev))
            self.assertEqual(ev["src"], f"127.0.0.1:{ngx.port}")
            self.assertEqual(ev["dst"], f"127.0.0.1:{curl_port}")
        self.assertNotEqual(curl_port, ngx.port)

        # connection identity: one conn_id per socket for both directions
        self.assertEqual(cw["conn_id"], cr["conn_id"])
        self.assertEqual(nr["conn_id"], nw["conn_id"])

        # classification
        self.assertEqual(cw["type"], "http1_request", h.describe(cw))
        self.assertEqual(nr["type"], "http1_request", h.describe(nr))
        self.assertEqual(nw["type"], "http1_response", h.describe(nw))
        self.assertEqual(cr["type"], "http1_response", h.describe(cr))

        # streams, reassembled by seq from 0 (the connection began after
        # clearcap was ready): both ends saw the same bytes
        _, c_out = h.reassemble(events, cw["conn_id"], "write", require_start_zero=True)
        _, n_in = h.reassemble(events, nr["conn_id"], "read", require_start_zero=True)
        _, n_out = h.reassemble(events, nw["conn_id"], "write", require_start_zero=True)
        _, c_in = h.reassemble(events, cr["conn_id"], "read", require_start_zero=True)
        self.assertTrue(c_out.startswith(request_line.encode()), c_out[:200])
        self.assertEqual(c_out.count(token.encode()), 1, c_out)
        self.assertEqual(c_out, n_in, "curl's written request != nginx's read request")
        self.assertEqual(n_out, c_in, "nginx's written response != curl's read response")
        self.assertTrue(c_in.startswith(b"HTTP/1.1 200 OK\r\n"), c_in[:200])
        self.assertTrue(c_in.endswith(b"\r\n\r\n" + h.RESPONSE_MARKER.encode() + b"\n"), c_in)
        self.assertEqual(len(c_out), access["request_length"])

    def test_curl_tls13(self):
        self._run(["--tlsv1.3"], "TLSv1.3")

    def test_curl_tls12(self):
        self._run(["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2")


if __name__ == "__main__":
    unittest.main()
