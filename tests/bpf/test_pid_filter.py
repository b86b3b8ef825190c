"""--pid: only the chosen process is captured, while another process sends
at the same time through the same library."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()


class PidFilterTest(unittest.TestCase):

    def _client(self, port, token):
        proc = h.start_process(
            self, h.py_client_argv(port, f"/{token}", "--token", token, "--wait-stdin"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        connected = h.read_json_line(proc, what="client handshake")
        self.assertEqual(connected["event"], "connected")
        self.assertEqual(connected["pid"], proc.pid)
        return proc, connected

    def test_only_chosen_pid(self):
        token_a = h.new_token()   # chosen
        token_b = h.new_token()   # must never appear
        with h.Nginx() as ngx:
            a, ca = self._client(ngx.port, token_a)
            with h.Clearcap(["--pid", a.pid]) as cap:
                b, cb = self._client(ngx.port, token_b)
                # release both at the same time
                for p in (a, b):
                    p.stdin.write(b"go\n")
                for p in (a, b):
                    p.stdin.flush()
                out_a, _ = h.finish(a, what="client A (chosen pid)")
                out_b, _ = h.finish(b, what="client B (other pid)")
                for out in (out_a, out_b):
                    done = json.loads(out.decode().splitlines()[-1])
                    self.assertEqual(done["status"], 200, done)
                pid_a, pid_b = a.pid, b.pid
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{token_a} HTTP/1.1", pid=pid_a,
                                                    direction="write"),
                             what="the chosen pid's token in a write event")
                cap.wait_for(lambda evs: h.matching(evs, h.RESPONSE_MARKER, pid=pid_a,
                                                    direction="read"),
                             what="the chosen pid's read of the response")
                # both requests reached nginx (so B's traffic really happened)
                h.wait_for(lambda: ngx.access_log_entry(f"GET /{token_b} ")
                           and ngx.access_log_entry(f"GET /{token_a} "),
                           5, what="both requests in nginx's access log")

        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        events = cap.events
        leaked = [e for e in events if h.has(e, token_b)]
        self.assertEqual(leaked, [], "the other pid's token was captured:\n"
                         + "\n".join(map(h.describe, leaked)))
        foreign = [e for e in events if e["pid"] != pid_a]
        self.assertEqual(foreign, [], f"events from pids other than {pid_a}:\n"
                         + "\n".join(map(h.describe, foreign[:20])))
        w = h.matching(events, f"GET /{token_a} HTTP/1.1", pid=pid_a, direction="write")[0]
        h.check_event_schema(self, w)
        self.assertEqual((w["src_port"], w["dst_port"]), (ca["local_port"], ngx.port), h.describe(w))
        self.assertNotEqual(ca["local_port"], cb["local_port"])


if __name__ == "__main__":
    unittest.main()
