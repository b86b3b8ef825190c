"""A 1 MiB request body written with ONE sendall() (one SSL_write_ex call)
must come out as several chunks with consecutive seq that reassemble the
stream byte-exact, on the writer's side and on nginx's read side."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from py_tls_client import make_body  # noqa: E402  (tests/testprogs)

h.privilege_gate()

BODY_SIZE = 1 << 20
SEED = 20240517
CHUNK_MAX = 16 * 1024


class UploadTest(unittest.TestCase):

    def test_one_mib_upload(self):
        token = h.new_token()
        path = f"/upload/{token}"
        body = make_body(BODY_SIZE, SEED, token)
        with h.Nginx() as ngx:
            with h.Clearcap() as cap:
                proc = h.start_process(
                    self, h.py_client_argv(ngx.port, path, "--token", token,
                                           "--body-size", BODY_SIZE, "--seed", SEED),
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, _ = h.finish(proc, what="python upload client")
                lines = [json.loads(x) for x in out.decode().splitlines()]
                connected, done = lines[0], lines[-1]
                self.assertEqual(done["status"], 201, done)
                sent = done["sent"]
                cport = connected["local_port"]
                pid = proc.pid

                def total(evs, **f):
                    return sum(e["len"] for e in h.matching(evs, **f))

                cap.wait_for(lambda evs: total(evs, pid=pid, direction="write") >= sent,
                             timeout=30, what=f"{sent} bytes written by the client")
                workers = ngx.worker_pids
                cap.wait_for(lambda evs: total(evs, comm="nginx", direction="read",
                                               pid=lambda p: p in workers) >= sent,
                             timeout=30, what=f"{sent} bytes read by nginx")
            # the judge that nginx really read the body: it stored it
            stored = ngx.uploaded(token)

        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        self.assertIsNotNone(stored, "nginx did not store the upload")
        self.assertEqual(stored == body, True, "nginx stored a different body")
        events = cap.events

        # --- writer side -------------------------------------------------
        mine = h.matching(events, pid=pid, direction="write")
        conns = {e["conn_id"] for e in mine}
        self.assertEqual(len(conns), 1, f"client wrote on one connection, got {conns}")
        conn = conns.pop()
        for e in mine:
            h.check_event_schema(self, e)
            self.assertEqual(e["source"], h.SYSTEM_SSL_WRITE, h.describe(e))
            self.assertFalse(e["truncated"], h.describe(e))
            self.assertLessEqual(e["len"], CHUNK_MAX, h.describe(e))
            self.assertEqual((e["src_port"], e["dst_port"]), (cport, ngx.port), h.describe(e))
        first, data = h.reassemble(events, conn, "write", require_start_zero=True)
        self.assertEqual(len(data), sent)
        head_end = data.index(b"\r\n\r\n") + 4
        self.assertTrue(data.startswith(f"PUT {path} HTTP/1.1\r\n".encode()), data[:200])
        self.assertEqual(len(data) - head_end, BODY_SIZE)
        self.assertTrue(data[head_end:] == body, "reassembled body differs from the sent body "
                        f"(first difference at byte {_first_diff(data[head_end:], body)})")

        # the large call: several chunks whose lens sum to call_len
        stream = sorted(mine, key=lambda e: e["seq"])
        calls = h.split_calls(stream)
        self.assertEqual(sum(c[0]["call_len"] for c in calls), sent,
                         "call_len of the calls must add up to the bytes sent")
        for c in calls:
            self.assertEqual(sum(e["len"] for e in c), c[0]["call_len"],
                             "chunks of one call: " + "; ".join(map(h.describe, c)))
            off = 0
            for e in c:
                self.assertEqual(e["call_len"], c[0]["call_len"], h.describe(e))
                self.assertEqual(e["call_off"], off, h.describe(e))
                off += e["len"]
        big = max(calls, key=lambda c: c[0]["call_len"])
        self.assertGreaterEqual(big[0]["call_len"], BODY_SIZE)
        # Python's sendall -> one SSL_write_ex with the whole request
        self.assertEqual(big[0]["call_len"], sent)
        self.assertGreaterEqual(len(big), -(-sent // CHUNK_MAX),
                                f"expected the {sent}-byte call split into chunks of <= 16 KiB")

        # --- nginx read side -------------------------------------------------
        # our nginx served only this one TLS connection
        theirs = h.matching(events, comm="nginx", direction="read",
                            pid=lambda p: p in workers)
        nconns = {e["conn_id"] for e in theirs}
        self.assertEqual(len(nconns), 1, f"nginx read on one connection, got {nconns}")
        ncid = nconns.pop()
        for e in theirs:
            h.check_event_schema(self, e)
            self.assertFalse(e["truncated"], h.describe(e))
            self.assertEqual((e["src_port"], e["dst_port"]), (cport, ngx.port), h.describe(e))
        _, ndata = h.reassemble(events, ncid, "read", require_start_zero=True)
        self.assertEqual(len(ndata), len(data))
        self.assertTrue(ndata == data, "nginx's read stream differs from the client's write stream "
                        f"(first difference at byte {_first_diff(ndata, data)})")
        self.assertEqual(ndata.count(token.encode()), 4)  # path, header, body head and tail


def _first_diff(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


if __name__ == "__main__":
    unittest.main()
