"""Output destinations against real peers during real curl -> nginx traffic.

* tcp://: a TCP listener in the test receives JSON lines; it is stopped and
  restarted while clearcap runs: capture and stdout keep flowing, what could
  not be delivered is counted in the summary, delivery resumes.
* ws://: a WebSocket server (python3-websockets) receives JSON text frames,
  and with -l and --format proto, binary LogEntry frames (logs and events).
* --format proto to a file, decoded with python3-protobuf (module generated
  by protoc at test time).
* rotation by size with retention; -l FILE and SIGHUP reopen (logrotate's
  create mode).
"""

import asyncio
import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()

PROTO = h.REPO / "sinks" / "ecaptureq" / "ecaptureq.proto"


class LineServer:
    """TCP listener on 127.0.0.1:port; records the lines of each connection,
    each parsed strictly as JSON."""

    def __init__(self, port: int):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        h.wait_for(lambda: self._bind(), 10, what=f"binding port {port}")
        self.sock.listen(8)
        self.lock = threading.Lock()
        self.conns: list[list[dict]] = []
        self.bad: list[tuple[bytes, str]] = []
        self._open: list[socket.socket] = []
        self._stop = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _bind(self):
        try:
            self.sock.bind(("127.0.0.1", self.port))
            return True
        except OSError:
            return False

    def _accept(self):
        while not self._stop:
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r or self._stop:
                continue
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append([])
                idx = len(self.conns) - 1
                self._open.append(c)
            t = threading.Thread(target=self._read, args=(c, idx), daemon=True)
            self._threads.append(t)
            t.start()

    def _read(self, c: socket.socket, idx: int):
        buf = b""
        while not self._stop:
            r, _, _ = select.select([c], [], [], 0.05)
            if not r:
                continue
            try:
                data = c.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    obj = h.parse_json_line(line)
                except (ValueError, UnicodeDecodeError) as e:
                    with self.lock:
                        self.bad.append((line[:300], str(e)))
                    continue
                with self.lock:
                    self.conns[idx].append(obj)

    def events(self, conn: int | None = None) -> list[dict]:
        with self.lock:
            if conn is not None:
                return list(self.conns[conn]) if conn < len(self.conns) else []
            return [e for c in self.conns for e in c]

    def stop(self):
        if self._stop:
            return
        self._stop = True
        for t in self._threads:
            t.join(5)
        with self.lock:
            for c in self._open:
                c.close()
        self.sock.close()


class WsServer:
    """python3-websockets (asyncio) server on 127.0.0.1:port in a thread;
    records (path, message) for every message a client sends."""

    def __init__(self, port: int):
        import websockets  # python3-websockets
        self.port = port
        self.lock = threading.Lock()
        self.messages: list[tuple[str, object]] = []
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.error = None

        async def handler(ws, path=None):
            try:
                async for msg in ws:
                    with self.lock:
                        self.messages.append((ws.path, msg))
            except websockets.ConnectionClosed:
                pass

        async def main():
            try:
                self.server = await websockets.serve(handler, "127.0.0.1", port, max_size=None)
            except Exception as e:  # noqa: BLE001 - reported to the test
                self.error = e
            started.set()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(main())
            if self.error is None:
                self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(10)
        if self.error is not None:
            raise AssertionError(f"websocket server on port {port}: {self.error}")

    def received(self):
        with self.lock:
            return list(self.messages)

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


def proto_module(tc):
    """ecaptureq_pb2 generated by protoc into a temp dir."""
    d = tempfile.mkdtemp(prefix="clearcap-pb-")
    tc.addCleanup(shutil.rmtree, d, True)
    r = subprocess.run(["protoc", f"--python_out={d}", f"-I{PROTO.parent}", str(PROTO)],
                       capture_output=True, text=True, timeout=60)
    tc.assertEqual(r.returncode, 0, r.stderr)
    sys.path.insert(0, d)
    try:
        import importlib
        import ecaptureq_pb2
        return importlib.reload(ecaptureq_pb2)
    finally:
        sys.path.remove(d)


def decode_delimited(pb, data: bytes) -> list:
    """LogEntry messages written as writeDelimitedTo does; strict: the data
    must end exactly at a message boundary."""
    from google.protobuf.internal.decoder import _DecodeVarint32
    out, pos = [], 0
    while pos < len(data):
        n, pos = _DecodeVarint32(data, pos)
        if pos + n > len(data):
            raise AssertionError(f"message at {pos} of {n} bytes runs past the end ({len(data)})")
        e = pb.LogEntry()
        e.ParseFromString(data[pos:pos + n])
        out.append(e)
        pos += n
    return out


def summary_output(tc, stderr: str, name: str) -> tuple[int, int, int, int]:
    """(write errors, bytes, events not delivered, connections) of one output."""
    m = re.findall(rf"output {re.escape(name)}: (\d+) write errors, (\d+) bytes and (\d+) events "
                   r"not delivered", stderr)
    tc.assertTrue(m, f"no summary line for output {name}:\n{stderr[-3000:]}")
    c = re.findall(rf"output {re.escape(name)}: \d+ records delivered, (\d+) connection", stderr)
    return (*map(int, m[-1]), int(c[-1]) if c else -1)


def read_json_lines(tc, path: str) -> list[dict]:
    out = []
    with open(path, "rb") as f:
        data = f.read()
    tc.assertTrue(data == b"" or data.endswith(b"\n"), f"{path} does not end with a full line")
    for line in data.splitlines():
        out.append(h.parse_json_line(line))
    return out


class OutputsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="clearcap-out-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_tcp_json_survives_listener_restart(self):
        t1, t2, t3, tup = (h.new_token() for _ in range(4))
        port = h.free_port()
        name = f"tcp://127.0.0.1:{port}"
        srv = LineServer(port)
        self.addCleanup(srv.stop)
        with h.Nginx() as ngx:
            with h.Clearcap(["--eventaddr", name, "--eventaddr", "stdout",
                             "--output-queue-mb", "1"]) as cap:
                cpid, _ = h.curl_get(self, ngx.port, f"/{t1}")
                got = h.wait_for(lambda: h.matching(srv.events(), f"GET /{t1} ", pid=cpid),
                                 h.EVENT_TIMEOUT, what="t1 request on the TCP listener")
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{t1} ", pid=cpid), what="t1 on stdout")
                h.check_event_schema(self, got[0])

                # Peer goes away: capture and the other output keep flowing.
                srv.stop()
                cpid2, _ = h.curl_get(self, ngx.port, f"/{t2}")
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{t2} ", pid=cpid2),
                             what="t2 on stdout while the TCP peer is down")
                # More than the 1 MiB queue while the peer is away: some
                # events must be dropped, and counted.
                h.curl_put(self, ngx.port, tup, h.text_body(3 << 20, tup), self.tmp)
                cap.wait_for(lambda evs: h.matching(evs, f"PUT /upload/{tup} ", comm="nginx"),
                             timeout=30, what="upload on stdout while the TCP peer is down")

                # Peer back on the same port: delivery resumes (backoff <= 5 s).
                srv2 = LineServer(port)
                self.addCleanup(srv2.stop)
                # Wait for the reconnect (backoff up to 5 s) and for the queue
                # the outage filled to drain: an event produced while that
                # queue is still full is dropped by design (and counted).
                h.wait_for(lambda: srv2.events(), 30, what="clearcap reconnecting to the restarted listener")
                h.wait_for(lambda: h.matching(srv2.events(), f"PUT /upload/{tup} ") or
                           len(srv2.events()) >= 8, 30, what="the queued backlog on the new connection")
                cpid3, _ = h.curl_get(self, ngx.port, f"/{t3}")
                h.wait_for(lambda: h.matching(srv2.events(), f"GET /{t3} ", pid=cpid3), 30,
                           what="t3 request on the restarted TCP listener")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        srv2.stop()
        self.assertEqual(srv.bad + srv2.bad, [], "lines that are not strict JSON")
        # The first line of the new connection starts at a record boundary.
        self.assertTrue(srv2.events(0), "nothing on the new connection")
        for ev in srv2.events()[:50]:
            self.assertIn("ts_ns", ev)
        errors, dropped_bytes, dropped_events, connects = summary_output(self, cap.stderr, name)
        self.assertGreater(dropped_events, 0, "a 1 MiB queue cannot hold 6 MiB:\n" + cap.stderr[-3000:])
        self.assertGreater(dropped_bytes, 1 << 20)
        self.assertGreaterEqual(connects, 2, cap.stderr[-3000:])
        # stdout has its own queue: t2 and the upload reached it above while
        # the TCP peer was away (what stdout itself dropped, because this
        # test reads it slowly, is counted on its own summary line).
        summary_output(self, cap.stderr, "stdout")

    def test_tcp_peer_that_never_reads_blocks_nothing(self):
        t1, tup = h.new_token(), h.new_token()
        # Accepts, then never reads: clearcap's socket buffer fills and its
        # sends block; only that output may suffer.
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lsock.close)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        port = lsock.getsockname()[1]
        name = f"tcp://127.0.0.1:{port}"
        accepted = []

        def accept():
            with contextlib.suppress(OSError):
                while True:
                    accepted.append(lsock.accept()[0])
        threading.Thread(target=accept, daemon=True).start()
        self.addCleanup(lambda: [c.close() for c in accepted])
        with h.Nginx() as ngx:
            with h.Clearcap(["--eventaddr", name, "--eventaddr", "stdout",
                             "--output-queue-mb", "1"]) as cap:
                h.wait_for(lambda: accepted, h.EVENT_TIMEOUT, what="clearcap connecting")
                h.curl_put(self, ngx.port, tup, h.text_body(3 << 20, tup), self.tmp)
                cpid, _ = h.curl_get(self, ngx.port, f"/{t1}")
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{t1} ", pid=cpid),
                             what="events on stdout while the TCP peer does not read")
                stop_started = time.monotonic()
            stop_took = time.monotonic() - stop_started  # clearcap's exit only
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        # Each writer has a bounded drain at exit (3 s), then its send is
        # interrupted: the exit never waits for the peer.
        h.log(f"stop took {stop_took:.1f} s")
        self.assertLess(stop_took, 15, cap.stderr[-3000:])
        _, dropped_bytes, dropped_events, _ = summary_output(self, cap.stderr, name)
        self.assertGreater(dropped_events, 0, cap.stderr[-3000:])
        self.assertGreater(dropped_bytes, 1 << 20, cap.stderr[-3000:])

    def test_bad_destinations_are_clear_errors(self):
        cases = [
            (["--eventaddr", "udp://127.0.0.1:1"], "--eventaddr: udp://127.0.0.1:1: unknown scheme 'udp://'"),
            (["-l", "tcp://127.0.0.1:99999"], "--logaddr: tcp://127.0.0.1:99999: port '99999' is not a number"),
            (["--eventaddr", "tcp://127.0.0.1"], "expected host:port"),
            (["--eventaddr", os.path.join(self.tmp, "no", "such", "dir.jsonl")],
             "cannot create: No such file or directory"),
        ]
        for args, expect in cases:
            r = subprocess.run([h.clearcap_bin(), "tls", *args], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 1, (args, r.stderr))
            self.assertIn(expect, r.stderr, args)
            self.assertNotIn("ready:", r.stderr, "must stop before attaching anything")

    def test_websocket_json_frames(self):
        token = h.new_token()
        port = h.free_port()
        ws = WsServer(port)
        self.addCleanup(ws.stop)
        with h.Nginx() as ngx:
            # curl's addresses from its first call: --syscall-fd always.
            with h.Clearcap(["--eventaddr", f"ws://127.0.0.1:{port}/clearcap", "--syscall-fd", "always"]) as cap:
                cpid, cport = h.curl_get(self, ngx.port, f"/{token}")

                def found():
                    for path, msg in ws.received():
                        if isinstance(msg, str) and f"GET /{token} " in msg:
                            ev = h.parse_json_line(msg.encode())
                            if ev["pid"] == cpid:
                                return path, ev
                    return None
                path, ev = h.wait_for(found, h.EVENT_TIMEOUT, what="token in a WebSocket text frame")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(path, "/clearcap")
        h.check_event_schema(self, ev)
        self.assertEqual((ev["src_port"], ev["dst_port"]), (cport, ngx.port))
        # One event per frame: every text frame is exactly one JSON object.
        for _, msg in ws.received():
            self.assertIsInstance(msg, str)
            h.parse_json_line(msg.rstrip("\n").encode())

    def test_logaddr_websocket_proto_logs_and_events(self):
        pb = proto_module(self)
        token = h.new_token()
        port = h.free_port()
        ws = WsServer(port)
        self.addCleanup(ws.stop)

        def entries():
            out = []
            for _, msg in ws.received():
                self.assertIsInstance(msg, bytes, "proto frames must be binary")
                e = pb.LogEntry()
                e.ParseFromString(msg)
                out.append(e)
            return out

        with h.Nginx() as ngx:
            with h.Clearcap(["-l", f"ws://127.0.0.1:{port}/", "--syscall-fd", "always"], fmt="proto") as cap:
                cpid, cport = h.curl_get(self, ngx.port, f"/{token}")

                def found():
                    for e in entries():
                        if (e.log_type == pb.LOG_TYPE_EVENT and e.event_payload.pid == cpid
                                and f"GET /{token} ".encode() in e.event_payload.payload):
                            return e.event_payload
                    return None
                ev = h.wait_for(found, h.EVENT_TIMEOUT, what="token in a binary LogEntry frame")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertIn("ready:", cap.stderr, "the ready line stays on stderr with -l")
        self.assertIn("--- summary", cap.stderr)
        logs = [e.run_log for e in entries() if e.log_type == pb.LOG_TYPE_PROCESS_LOG]
        self.assertTrue(any(line.startswith("ready: attached") for line in logs), logs[:10])
        self.assertTrue(any(line.startswith("--- summary") for line in logs), logs[-20:])
        self.assertEqual(ev.pname, "curl")
        self.assertEqual((ev.src_ip, ev.src_port, ev.dst_ip, ev.dst_port),
                         ("127.0.0.1", cport, "127.0.0.1", ngx.port))
        self.assertEqual(ev.type, 1)
        self.assertEqual(ev.length, len(ev.payload))

    def test_proto_file_decoded_by_protobuf(self):
        pb = proto_module(self)
        token = h.new_token()
        out = os.path.join(self.tmp, "events.pb")
        with h.Nginx() as ngx:
            with h.Clearcap(["--eventaddr", out, "--syscall-fd", "always"], fmt="proto") as cap:
                t_before = time.time_ns()
                cpid, cport = h.curl_get(self, ngx.port, f"/{token}")
                t_after = time.time_ns()
                req = f"GET /{token} HTTP/1.1\r\n".encode()

                def ready():
                    try:
                        with open(out, "rb") as f:
                            data = f.read()
                    except FileNotFoundError:
                        return None
                    return req in data and h.RESPONSE_MARKER.encode() in data
                h.wait_for(ready, h.EVENT_TIMEOUT, what="token in the proto file")
                workers = ngx.current_workers()
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        with open(out, "rb") as f:
            entries = decode_delimited(pb, f.read())
        evs = [e.event_payload for e in entries]
        self.assertTrue(all(e.log_type == pb.LOG_TYPE_EVENT for e in entries))
        cw = [e for e in evs if e.pid == cpid and e.payload.startswith(req)]
        nr = [e for e in evs if e.pid in workers and e.payload.startswith(req)]
        cr = [e for e in evs if e.pid == cpid and h.RESPONSE_MARKER.encode() in e.payload]
        self.assertEqual(len(cw), 1, cw)
        self.assertEqual(len(nr), 1, nr)
        self.assertTrue(cr)
        cw, nr, cr = cw[0], nr[0], cr[0]
        for e in (cw, nr):
            self.assertEqual(e.type, 1)
            self.assertEqual((e.src_ip, e.src_port, e.dst_ip, e.dst_port),
                             ("127.0.0.1", cport, "127.0.0.1", ngx.port))
            self.assertEqual(e.length, len(e.payload))
            self.assertGreaterEqual(e.timestamp, t_before - 5_000_000_000)
            self.assertLessEqual(e.timestamp, t_after + 5_000_000_000)
        self.assertEqual(cw.pname, "curl")
        self.assertEqual(nr.pname, "nginx")
        self.assertEqual(cr.dst_port, cport)
        # uuid: per connection and direction; the same run prefix.
        self.assertNotEqual(cw.uuid, cr.uuid)
        self.assertNotEqual(cw.uuid, nr.uuid)
        self.assertEqual(cw.uuid.split("-")[0], cr.uuid.split("-")[0])
        self.assertTrue(cw.uuid.endswith("-w") and cr.uuid.endswith("-r"), (cw.uuid, cr.uuid))
        # Every event of curl's read direction carries the same uuid.
        self.assertEqual({e.uuid for e in evs if e.pid == cpid and e.uuid.endswith("-r")
                          and e.uuid.rsplit("-", 2)[1] == cr.uuid.rsplit("-", 2)[1]}, {cr.uuid})

    def test_rotation_by_size_keeps_n_files(self):
        tokens = [h.new_token() for _ in range(3)]
        out = os.path.join(self.tmp, "ev.jsonl")
        with h.Nginx() as ngx:
            with h.Clearcap(["--eventaddr", out, "--eventroratesize", "1", "--rotate-keep", "2"]) as cap:
                for t in tokens:
                    h.curl_put(self, ngx.port, t, h.text_body(1536 * 1024, t), self.tmp)
                # The uploads' own request lines are rotated away by now
                # (3 MiB follow each); a last small request is kept.
                final = h.new_token()
                h.curl_get(self, ngx.port, f"/{final}")
                last = f"GET /{final} ".encode()

                def written():
                    for p in os.listdir(self.tmp):
                        if p.startswith("ev."):
                            try:
                                with open(os.path.join(self.tmp, p), "rb") as f:
                                    if last in f.read():
                                        return True
                            except FileNotFoundError:
                                pass  # rotated (or deleted by --rotate-keep) since the listing
                    return False
                h.wait_for(written, 30, what="last upload written to the event files")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        names = sorted(os.listdir(self.tmp))
        rotated = [n for n in names if re.fullmatch(r"ev\.\d{8}-\d{6}(-\d+)?\.jsonl", n)]
        self.assertEqual(len(rotated), 2, f"--rotate-keep 2: {names}")
        self.assertIn("ev.jsonl", names)
        found = []
        for n in rotated + ["ev.jsonl"]:
            p = os.path.join(self.tmp, n)
            self.assertLessEqual(os.path.getsize(p), 1 << 20, f"{n} exceeds --eventroratesize 1")
            for ev in read_json_lines(self, p):
                if h.has(ev, last):
                    found.append(n)
        self.assertTrue(found, "the last request is in a kept file")
        _, _, dropped, _ = summary_output(self, cap.stderr, out)
        self.assertEqual(dropped, 0, cap.stderr[-3000:])

    def test_logaddr_file_and_sighup_reopen(self):
        t1, t2 = h.new_token(), h.new_token()
        out = os.path.join(self.tmp, "all.jsonl")
        moved = out + ".1"
        with h.Nginx() as ngx:
            with h.Clearcap(["-l", out]) as cap:
                cpid, _ = h.curl_get(self, ngx.port, f"/{t1}")

                def has_in(path, pred):
                    try:
                        return [e for e in read_json_lines(self, path) if pred(e)]
                    except (FileNotFoundError, AssertionError):
                        return None
                h.wait_for(lambda: has_in(out, lambda e: e.get("pid") == cpid and h.has(e, f"GET /{t1} ")),
                           h.EVENT_TIMEOUT, what="t1 in the -l file")
                # logrotate, create mode: move the file away, then SIGHUP.
                os.rename(out, moved)
                cap.proc.send_signal(signal.SIGHUP)
                h.wait_for(lambda: has_in(out, lambda e: "SIGHUP" in e.get("log", "")),
                           h.EVENT_TIMEOUT, what="a new file after SIGHUP")
                cpid2, _ = h.curl_get(self, ngx.port, f"/{t2}")
                h.wait_for(lambda: has_in(out, lambda e: e.get("pid") == cpid2 and h.has(e, f"GET /{t2} ")),
                           h.EVENT_TIMEOUT, what="t2 in the reopened file")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        old = read_json_lines(self, moved)
        new = read_json_lines(self, out)
        self.assertTrue(any(e.get("log", "").startswith("ready: attached") for e in old))
        self.assertFalse([e for e in old if h.has(e, t2)], "t2 went to the moved file")
        self.assertTrue(any(e.get("log", "").startswith("--- summary") for e in new))
        self.assertIn("--- summary", cap.stderr)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)
        self.assertEqual(cap.events, [], "with -l FILE no event goes to stdout")


if __name__ == "__main__":
    unittest.main()
