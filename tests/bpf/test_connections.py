"""Connections are connections: one process makes four sequential TLS
connections over memory BIOs (Python asyncio: SSLObject, no socket BIO, and
the allocator hands each new SSL object the address of the last one). Each
gets its own conn_id, each direction's offsets start at 0, and the
addresses come from the socket the thread sends the ciphertext to."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()

CLIENT = r"""
import asyncio, gc, json, ssl, sys
port, token = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
async def one(i):
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    w.write(f"GET /{token}-{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await w.drain()
    body = await r.read()
    w.close()
    await w.wait_closed()
    return len(body)
async def main():
    for i in range(4):
        await one(i)
        gc.collect()  # the SSL object is freed before the next one is made
asyncio.run(main())
print(json.dumps({"event": "done"}), flush=True)
"""


class ConnectionsTest(unittest.TestCase):

    def test_sequential_memory_bio_connections_get_their_own_ids(self):
        token = h.new_token()
        with h.Nginx() as ngx:
            # Memory BIOs: the sockets come from the syscall tracepoints,
            # attached from the start with "always" (auto would attach them
            # only after the first connection).
            with h.Clearcap(["--syscall-fd", "always"]) as cap:
                client = h.start_process(self, [h.test_python(), "-c", CLIENT, str(ngx.port), token],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, _ = h.finish(client, what="asyncio client")
                self.assertIn(b"done", out)
                for i in range(4):
                    cap.wait_for(lambda evs, i=i: h.matching(evs, f"GET /{token}-{i} ", pid=client.pid),
                                 what=f"request {i}")
                    cap.wait_for(lambda evs, i=i: [e for e in evs if e.get("pid") == client.pid and
                                                   e.get("direction") == "read" and
                                                   h.has(e, h.RESPONSE_MARKER)], what="responses")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        evs = [e for e in cap.events if e.get("pid") == client.pid]
        conns = {}
        for e in evs:
            conns.setdefault(e["conn_id"], []).append(e)
        requests = {}
        for cid, es in conns.items():
            for i in range(4):
                if any(h.has(e, f"GET /{token}-{i} ") for e in es):
                    requests.setdefault(i, set()).add(cid)
        h.log(f"conn ids: {sorted(conns)}; requests by connection: {requests}")
        self.assertEqual(len(requests), 4, requests)
        self.assertEqual(len({next(iter(c)) for c in requests.values()}), 4,
                         f"each connection has its own conn_id: {requests}")
        for cid, es in conns.items():
            for direction in ("write", "read"):
                seqs = sorted(e["seq"] for e in es if e["direction"] == direction)
                if seqs:
                    self.assertEqual(seqs[0], 0, f"conn {cid} {direction}: offsets start at 0: {seqs}")
        for e in evs:
            # No socket BIO: the addresses come from the socket the same
            # thread writes the ciphertext to right after the handshake call.
            self.assertEqual(e["family"], "ipv4", json.dumps(e)[:300])
            peer = e["dst"] if e["direction"] == "write" else e["src"]
            self.assertTrue(peer.endswith(f":{ngx.port}"), json.dumps(e)[:300])


if __name__ == "__main__":
    unittest.main()
