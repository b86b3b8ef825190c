"""--listen: the configuration API changes a running capture.

- a pid filter posted while two processes send requests: afterwards only the
  chosen process is captured, and nothing captured before the change is lost;
- bad JSON -> code 4 / 400, a library that does not exist -> code 5 / 400,
  an unknown path -> code 3 / 404, another module's path -> code 1 / 400, and
  the capture keeps running through all of them;
- GET /metrics passes `promtool check metrics`; GET /status shows the change;
- a new library path re-attaches the probes without restarting: traffic
  through the new library is captured from then on."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import remote_util as r  # noqa: E402

h.privilege_gate()



class ConfigApiTest(unittest.TestCase):

    def _client(self, port, token, repeat):
        proc = h.start_process(
            self, h.py_client_argv(port, f"/{token}-{{i}}", "--token", f"{token}-{{i}}", "--wait-stdin",
                                   "--repeat", repeat),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        connected = h.read_json_line(proc, what="client handshake")
        self.assertEqual(connected["pid"], proc.pid)
        return proc

    @staticmethod
    def _go(*procs):
        for p in procs:
            p.stdin.write(b"go\n")
        for p in procs:
            p.stdin.flush()

    def _done(self, proc, what):
        done = h.read_json_line(proc, what=what)
        self.assertEqual((done["event"], done["status"]), ("done", 200), done)

    def test_pid_filter_in_place_and_errors(self):
        token_a, token_b = h.new_token(), h.new_token()
        with h.Nginx() as ngx:
            a = self._client(ngx.port, token_a, 2)
            b = self._client(ngx.port, token_b, 2)
            # Both processes to start with; the API narrows it to A.
            with h.Clearcap(["--pid", f"{a.pid},{b.pid}", "--listen", "127.0.0.1:0"]) as cap:
                addr = r.api_addr(cap)
                self.assertEqual(addr[0], "127.0.0.1")  # loopback by default

                # Round 0: both captured.
                self._go(a, b)
                self._done(a, "client A round 0")
                self._done(b, "client B round 0")
                for tok, proc in ((token_a, a), (token_b, b)):
                    cap.wait_for(lambda evs, t=tok, p=proc: h.matching(evs, f"GET /{t}-0 HTTP/1.1", pid=p.pid),
                                 what=f"round 0 request of pid {proc.pid}")
                # Both clients are now connected again, waiting for round 1.
                for p in (a, b):
                    self.assertEqual(h.read_json_line(p, what="reconnect")["event"], "connected")

                # Errors change nothing, and the capture keeps running.
                r.check_reply(self, r.api(addr, "POST", "/tls", "{\"pid\": "), 400, 4, "not valid JSON")
                r.check_reply(self, r.api(addr, "POST", "/tls", '{"pid": "x"}'), 400, 5, "'pid'")
                r.check_reply(self, r.api(addr, "POST", "/openssl",
                                          json.dumps({"opensslpath": f"/nonexistent/{token_a}/libssl.so"})),
                              400, 5, "opensslpath")
                r.check_reply(self, r.api(addr, "POST", f"/no-such-{token_a}", "{}"), 404, 3)
                r.check_reply(self, r.api(addr, "GET", "/tls"), 400, 1)
                r.check_reply(self, r.api(addr, "POST", "/gotls", '{"pid": 1}'), 400, 1, "tls")
                r.check_reply(self, r.api(addr, "POST", "/tls", "x" * (70 * 1024)), 413, 1, "too large")
                status, st = r.api(addr, "GET", "/status")
                self.assertEqual(status, 200, st)
                self.assertEqual(sorted(st["data"]["config"]["pids"]), sorted([a.pid, b.pid]), st)

                # The change: only A from now on (BPF map, nothing detached).
                r.check_reply(self, r.api(addr, "POST", "/boringssl", json.dumps({"pid": a.pid})), 200, 0)
                status, st = r.api(addr, "GET", "/status")
                self.assertEqual(st["data"]["config"]["pids"], [a.pid], st)
                # In place: the probes stay where they were (in both processes).
                self.assertEqual(sorted(st["data"]["probes"]["pids"]), sorted([a.pid, b.pid]), st)

                # Round 1: both send, only A is captured.
                self._go(a, b)
                out_a, _ = h.finish(a, what="client A round 1")
                out_b, _ = h.finish(b, what="client B round 1")
                for out in (out_a, out_b):
                    self.assertEqual(json.loads(out.decode().splitlines()[-1])["status"], 200)
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{token_a}-1 HTTP/1.1", pid=a.pid),
                             what="round 1 request of the chosen pid")
                cap.wait_for(lambda evs: len(h.matching(evs, h.RESPONSE_MARKER, pid=a.pid, direction="read")) >= 2,
                             what="both responses read by the chosen pid")
                h.wait_for(lambda: ngx.access_log_entry(f"GET /{token_b}-1 "), 5,
                           what="B's round 1 request in nginx's access log")

                # /metrics: valid exposition format, real numbers.
                status, metrics = r.api(addr, "GET", "/metrics")
                self.assertEqual(status, 200)
                promtool = shutil.which("promtool")
                self.assertIsNotNone(promtool, "promtool missing: apt-get install prometheus "
                                     "(scripts/install-deps.sh --test)")
                chk = subprocess.run([promtool, "check", "metrics"], input=metrics.encode(),
                                     capture_output=True, timeout=60)
                self.assertEqual(chk.returncode, 0, (chk.stdout + chk.stderr).decode() + metrics[:3000])
                values = {}
                for line in metrics.splitlines():
                    if line and not line.startswith("#"):
                        name, _, value = line.rpartition(" ")
                        values[name] = float(value)
                self.assertGreaterEqual(values["clearcap_events_total"], 6, metrics)
                self.assertGreater(values["clearcap_filtered_calls_total"], 0, metrics)
                self.assertIn('clearcap_lost_records_total{cause="ringbuf_full"}', values)
                self.assertIn('clearcap_output_dropped_events_total{output="stdout"}', values)

        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        events = cap.events
        # Nothing from before the change is lost: both round-0 exchanges whole.
        for tok, proc in ((token_a, a), (token_b, b)):
            self.assertTrue(h.matching(events, f"GET /{tok}-0 HTTP/1.1", pid=proc.pid, direction="write"))
            self.assertTrue(h.matching(events, h.RESPONSE_MARKER, pid=proc.pid, direction="read"),
                            f"round 0 response of pid {proc.pid} missing")
        self.assertTrue(h.matching(events, f"GET /{token_a}-1 HTTP/1.1", pid=a.pid, direction="write"))
        leaked = [e for e in events if h.has(e, f"{token_b}-1")]
        self.assertEqual(leaked, [], "B was captured after the filter excluded it:\n"
                         + "\n".join(map(h.describe, leaked)))
        b_events = [e for e in events if e["pid"] == b.pid]
        self.assertEqual(len(h.matching(b_events, h.RESPONSE_MARKER, direction="read")), 1,
                         "\n".join(map(h.describe, b_events)))
        self.assertIn("config API: filters: pids", cap.stderr)

    def test_pid_outside_probes_reattaches(self):
        """Started with --pid A (probes only in A): posting pid B moves the
        probes to B without restarting; A's capture before the change stays."""
        token_a, token_b = h.new_token(), h.new_token()
        with h.Nginx() as ngx:
            a = self._client(ngx.port, token_a, 2)
            b = self._client(ngx.port, token_b, 2)
            with h.Clearcap(["--pid", a.pid, "--listen", "127.0.0.1:0"]) as cap:
                addr = r.api_addr(cap)
                self._go(a, b)
                self._done(a, "client A round 0")
                self._done(b, "client B round 0")
                cap.wait_for(lambda evs: h.matching(evs, h.RESPONSE_MARKER, pid=a.pid, direction="read"),
                             what="A's round 0 response")
                for p in (a, b):
                    self.assertEqual(h.read_json_line(p, what="reconnect")["event"], "connected")

                r.check_reply(self, r.api(addr, "POST", "/tls", json.dumps({"pids": [b.pid]})), 200, 0)
                status, st = r.api(addr, "GET", "/status")
                self.assertEqual(st["data"]["probes"]["pids"], [b.pid], st)
                self.assertEqual(st["data"]["config"]["pids"], [b.pid], st)

                self._go(a, b)
                h.finish(a, what="client A round 1")
                h.finish(b, what="client B round 1")
                cap.wait_for(lambda evs: h.matching(evs, h.RESPONSE_MARKER, pid=b.pid, direction="read"),
                             what="B's round 1 response")
                h.wait_for(lambda: ngx.access_log_entry(f"GET /{token_a}-1 "), 5, what="A's round 1 at nginx")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        events = cap.events
        self.assertTrue(h.matching(events, f"GET /{token_a}-0 HTTP/1.1", pid=a.pid, direction="write"))
        self.assertTrue(h.matching(events, f"GET /{token_b}-1 HTTP/1.1", pid=b.pid, direction="write"))
        for needle in (f"{token_b}-0", f"{token_a}-1"):
            self.assertFalse([e for e in events if h.has(e, needle)], f"{needle} was captured")
        self.assertEqual({e["pid"] for e in events}, {a.pid, b.pid})
        self.assertIn("re-attached", cap.stderr)

    def test_new_library_reattaches(self):
        node = h.node_bin()
        if not os.path.exists(node):
            self.skipTest(f"{node} not found")
        token = h.new_token()
        with h.Nginx() as ngx:
            client = self._client(ngx.port, token, 2)
            # Hooked into node only: python's libssl.so.3 is not a target.
            with h.Clearcap(["--libssl", node, "--listen", "127.0.0.1:0"]) as cap:
                addr = r.api_addr(cap)
                self._go(client)
                self._done(client, "request through an unhooked library")
                h.wait_for(lambda: ngx.access_log_entry(f"GET /{token}-0 "), 5, what="round 0 at nginx")
                self.assertEqual(h.read_json_line(client, what="reconnect")["event"], "connected")

                r.check_reply(self, r.api(addr, "POST", "/tls", json.dumps({"opensslpath": h.SYSTEM_LIBSSL})),
                              200, 0)
                status, st = r.api(addr, "GET", "/status")
                self.assertEqual(st["data"]["config"]["opensslpath"], h.SYSTEM_LIBSSL, st)
                self.assertEqual(st["data"]["probes"]["targets"], [h.SYSTEM_LIBSSL], st)

                self._go(client)
                h.finish(client, what="request through the new library")
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{token}-1 HTTP/1.1", pid=client.pid,
                                                    direction="write"),
                             what="the request through the re-attached library")
                self.assertIn("re-attached", cap.stderr)
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertFalse([e for e in cap.events if h.has(e, f"{token}-0")],
                         "round 0 went through a library that was not hooked yet")


    def test_same_library_under_another_path_is_hooked_once(self):
        # /lib is /usr/lib on a merged-/usr system: the same inode.
        alias = "/lib/x86_64-linux-gnu/libssl.so.3"
        self.assertEqual(os.stat(alias).st_ino, os.stat(h.SYSTEM_LIBSSL).st_ino)
        token = h.new_token()
        with h.Nginx() as ngx:
            with h.Clearcap(["--libssl", h.SYSTEM_LIBSSL, "--listen", "127.0.0.1:0"]) as cap:
                addr = r.api_addr(cap)
                before = r.api(addr, "GET", "/status")[1]["data"]["probes"]["uprobes"]
                for path in (alias, h.SYSTEM_LIBSSL, alias):
                    r.check_reply(self, r.api(addr, "POST", "/tls", json.dumps({"opensslpath": path})), 200, 0)
                    st = r.api(addr, "GET", "/status")[1]
                    self.assertEqual(st["data"]["probes"]["uprobes"], before, st)
                # A path with a NUL byte is refused, not cut short where the kernel reads it.
                r.check_reply(self, r.api(addr, "POST", "/tls", '{"opensslpath":"' + alias + '\\u0000x"}'),
                              400, 5, "NUL")
                curl = h.start_process(self, ["curl", "-sk", "--http1.1", f"https://127.0.0.1:{ngx.port}/{token}"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                h.finish(curl, what="curl")
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{token} ", pid=curl.pid), what="the request")
                time.sleep(0.5)
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        self.assertEqual(len(h.matching(cap.events, f"GET /{token} ", pid=curl.pid)), 1,
                         "each call is seen once, not once per name of the library")


if __name__ == "__main__":
    unittest.main()
