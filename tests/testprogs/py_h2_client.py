#!/usr/bin/python3
"""HTTP/2 client for the clearcap bpf tests, on python3-h2 over the ssl
module of /usr/bin/python3 (the system libssl.so.3).

Every path given is requested as its own stream on ONE connection, all
HEADERS sent in one write, so that the streams are in flight together and
the server may answer them in any order.

  --pause-after-first   request the first path alone, print
                        {"event": "paused", ...} and wait for a line on
                        stdin before requesting the rest (a connection a
                        capture picks up mid-way, HPACK tables already
                        filled)
  --header NAME=VALUE   an extra request header on every request (repeatable)

stdout: one JSON line per batch: {"event": "paused"|"done", "pid",
"local_port", "streams": [{"stream_id", "path", "status", "body"}]}.
"""

import argparse
import json
import os
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events


def exchange(sock, conn, authority, paths, extra):
    """Sends every path as a stream at once; returns the answers by stream."""
    streams = {}
    for path in paths:
        sid = conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", path),
                   ("user-agent", "clearcap-h2-test"), *extra]
        conn.send_headers(sid, headers, end_stream=True)
        streams[sid] = {"stream_id": sid, "path": path, "status": None, "body": b""}
    sock.sendall(conn.data_to_send())
    open_streams = set(streams)
    while open_streams:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("connection closed with streams open")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                streams[ev.stream_id]["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                streams[ev.stream_id]["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                open_streams.discard(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                raise SystemExit(f"stream {ev.stream_id} reset")
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    return [dict(s, body=s["body"].decode("utf-8", "replace")) for s in streams.values()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pause-after-first", action="store_true")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    extra = [tuple(h.split("=", 1)) for h in a.header]

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", a.port), timeout=30)
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    if sock.selected_alpn_protocol() != "h2":
        raise SystemExit(f"server did not agree to h2 (ALPN {sock.selected_alpn_protocol()!r})")
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    authority = f"127.0.0.1:{a.port}"

    def report(event, streams):
        print(json.dumps({"event": event, "pid": os.getpid(), "local_port": sock.getsockname()[1],
                          "streams": streams}), flush=True)

    paths = a.paths
    if a.pause_after_first:
        report("paused", exchange(sock, conn, authority, paths[:1], extra))
        sys.stdin.readline()
        paths = paths[1:]
    report("done", exchange(sock, conn, authority, paths, extra))
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()


if __name__ == "__main__":
    main()
