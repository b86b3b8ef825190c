"""node (OpenSSL linked statically into /usr/bin/node) via --libssl /usr/bin/node."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()


class NodeClientTest(unittest.TestCase):

    def test_node_static_openssl(self):
        node = h.node_bin()
        if not os.path.exists(node):
            self.fail(f"node not found ({node}); install nodejs")
        token = h.new_token()
        path = f"/{token}"
        req = f"GET {path} HTTP/1.1\r\n"
        with h.Nginx() as ngx:
            with h.Clearcap(["--libssl", node]) as cap:
                pid, res = h.run_node_client(self, ngx.port, path, token)
                self.assertEqual(res["pid"], pid)
                self.assertEqual(res["status"], 200, res)
                self.assertEqual(res["body"], h.RESPONSE_MARKER + "\n")
                cap.wait_for(lambda evs: h.matching(evs, req, pid=pid, direction="write"),
                             what="node write event with the token")
                cap.wait_for(lambda evs: h.matching(evs, h.RESPONSE_MARKER, pid=pid, direction="read"),
                             what="node read event with the response marker")

        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        events = cap.events
        w = h.matching(events, req, pid=pid, direction="write")
        self.assertEqual(len(w), 1, "\n".join(map(h.describe, w)))
        w = w[0]
        h.check_event_schema(self, w)
        self.assertEqual(w["comm"], "node", h.describe(w))
        self.assertIn(w["source"], ("SSL_write", "SSL_write_ex", h.SYSTEM_SSL_WRITE), h.describe(w))
        self.assertIn(f"X-Clearcap-Token: {token}".encode(), h.payload_bytes(w))
        r = h.matching(events, h.RESPONSE_MARKER, pid=pid, direction="read")[0]
        h.check_event_schema(self, r)
        # only node was hooked: nginx (libssl.so.3) must not show up
        others = [e for e in events if h.has(e, token) and e["pid"] != pid]
        self.assertEqual(others, [], "\n".join(map(h.describe, others)))


if __name__ == "__main__":
    unittest.main()
