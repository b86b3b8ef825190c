"""--ecaptureq: a third-party WebSocket client (python3-websocket) decodes
clearcap's stream with a protobuf module protoc generates from
sinks/ecaptureq/ecaptureq.proto: heartbeat on connect (and the next one 15 s later),
the history replayed in order to a client that connects late, and an event
carrying the test's token with every field filled."""

import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import remote_util as r  # noqa: E402

h.privilege_gate()

# "<run id: 16 hex digits>-<conn_id>-<w|r>" (sinks/ecaptureq_convert.h)
UUID_RE = re.compile(r"^[0-9a-f]{16}-[0-9]+-[wr]$")


def non_heartbeats(entries):
    return [e for e in entries if e.WhichOneof("payload") != "heartbeat_payload"]


def token_events(entries, needle: bytes):
    return [e.event_payload for e in entries
            if e.WhichOneof("payload") == "event_payload" and needle in e.event_payload.payload]


class EcaptureqTest(unittest.TestCase):

    def test_stream_history_and_fields(self):
        pb = r.ecaptureq_pb2()
        token = h.new_token()
        ws_token = h.new_token()
        with h.Nginx() as ngx:
            # The client exists before clearcap so that --pid keeps other
            # programs' traffic (other tests on this machine) out of the
            # 128-message history this test inspects.
            client = h.start_process(
                self, h.py_client_argv(ngx.port, f"/{token}", "--token", token, "--wait-stdin"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            connected = h.read_json_line(client, what="client handshake")
            with h.Clearcap(["--pid", client.pid, "--ecaptureq", "ws://127.0.0.1:0/",
                             "--ecaptureq-token", ws_token]) as cap:
                url = r.ws_url(cap)
                self.assertTrue(url.startswith("ws://127.0.0.1:"), url)  # loopback by default

                # Without the token the upgrade is refused.
                import websocket
                with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
                    websocket.create_connection(url, timeout=10)
                self.assertEqual(refused.exception.status_code, 401)

                # Nor is a cross-origin one (a web page), token or not.
                with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
                    websocket.create_connection(url, timeout=10, header=[f"Authorization: Bearer {ws_token}"],
                                                origin="http://eCaptureQ.example")
                self.assertEqual(refused.exception.status_code, 403)

                early = r.EcqClient(url, header=[f"Authorization: Bearer {ws_token}"])
                t_connect = time.monotonic()
                try:
                    first = early.wait_for(lambda m: m, what="the first message")[0]
                    self.assertEqual(first.log_type, pb.LOG_TYPE_HEARTBEAT, r.describe_entry(first))
                    self.assertEqual(first.heartbeat_payload.count, 1)
                    self.assertEqual(first.heartbeat_payload.message, "heartbeat:1")
                    self.assertLess(abs(first.heartbeat_payload.timestamp - time.time()), 60)

                    t0 = time.time_ns()
                    client.stdin.write(b"go\n")
                    client.stdin.flush()
                    out, _ = h.finish(client, what="client")
                    t1 = time.time_ns()
                    needle = f"GET /{token} HTTP/1.1".encode()
                    early.wait_for(lambda m: token_events(m, needle), what="the token's event (live)")
                    early.wait_for(lambda m: token_events(m, h.RESPONSE_MARKER.encode()),
                                   what="the response event (live)")

                    ev = token_events(early.messages, needle)[0]
                    self.assertEqual(ev.pid, client.pid)
                    self.assertEqual(ev.pname, "python3")
                    self.assertEqual((ev.src_ip, ev.dst_ip), ("127.0.0.1", "127.0.0.1"))
                    self.assertEqual((ev.src_port, ev.dst_port), (connected["local_port"], ngx.port))
                    self.assertRegex(ev.uuid, UUID_RE)
                    # Unix epoch nanoseconds, not seconds or boot time.
                    self.assertGreaterEqual(ev.timestamp, t0 - 2_000_000_000)
                    self.assertLessEqual(ev.timestamp, t1 + 2_000_000_000)
                    self.assertEqual(ev.type, 1)  # HTTP/1 request
                    self.assertEqual(ev.length, len(ev.payload))
                    self.assertTrue(ev.payload.startswith(needle), ev.payload[:100])
                    self.assertIn(f"X-Clearcap-Token: {token}".encode(), ev.payload)
                    resp = token_events(early.messages, h.RESPONSE_MARKER.encode())[0]
                    self.assertEqual(resp.type, 3)  # HTTP/1 response
                    self.assertEqual((resp.src_port, resp.dst_port), (ngx.port, connected["local_port"]))
                    self.assertNotEqual(resp.uuid, ev.uuid)  # other direction: another stream
                    same_stream = [e for e in token_events(early.messages, b"")
                                   if e.src_port == ev.src_port and e.dst_port == ev.dst_port]
                    self.assertTrue(all(e.uuid == ev.uuid for e in same_stream))

                    # A late client gets the heartbeat, then the history in
                    # the order the early client saw it live.
                    live = non_heartbeats(early.messages)
                    late = r.EcqClient(f"{url}?token={ws_token}")
                    try:
                        late.wait_for(lambda m: len(non_heartbeats(m)) >= len(live),
                                      what=f"{len(live)} replayed messages")
                        got = late.messages
                        self.assertEqual(got[0].log_type, pb.LOG_TYPE_HEARTBEAT)
                        self.assertEqual(got[0].heartbeat_payload.count, 1)
                        replay = non_heartbeats(got)[:len(live)]
                        self.assertEqual([e.SerializeToString() for e in replay],
                                         [e.SerializeToString() for e in live],
                                         "history differs from the live order:\n" + late.describe())
                        self.assertTrue(token_events(replay, needle), late.describe())
                        logs = [e.run_log for e in replay if e.WhichOneof("payload") == "run_log"]
                        self.assertTrue(any("ready:" in line for line in logs), logs)
                    finally:
                        late.close()

                    # The periodic heartbeat: count 2 about 15 s after connect.
                    hb2 = early.wait_for(
                        lambda m: [e for e in m if e.WhichOneof("payload") == "heartbeat_payload"
                                   and e.heartbeat_payload.count == 2],
                        timeout=25, what="the second heartbeat")[0]
                    self.assertEqual(hb2.heartbeat_payload.message, "heartbeat:2")
                    self.assertGreaterEqual(time.monotonic() - t_connect, 14)
                finally:
                    early.close()

        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        self.assertRegex(cap.stderr, r"output ws://127\.0\.0\.1:\d+/: 0 write errors, 0 bytes and 0 events")
        self.assertRegex(cap.stderr, r"output ws://127\.0\.0\.1:\d+/ clients: 0 write errors, 0 bytes and 0 events")
        # stdout keeps its JSON lines alongside the stream.
        self.assertTrue(h.matching(cap.events, f"GET /{token} HTTP/1.1", pid=client.pid))


if __name__ == "__main__":
    unittest.main()
