"""The protocol layer against real clients and nginx: HTTP/1.1 (gzip bodies
decoded, a chunked 1 MiB upload, pipelined requests) and HTTP/2 (curl, and a
python3-h2 client with concurrent streams on one connection, also picked up
mid-way), each request paired with its response, with latency; and
--http-summary's one line per exchange.

Message and exchange events are the JSON lines with an "http" object
(harness: cap.http_events).
"""

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import remote_util as r  # noqa: E402

h.privilege_gate()

H2_CLIENT = str(h.TESTPROGS / "py_h2_client.py")


def messages(evs, kind, **fields):
    """Message events of `kind` ("request"/"response") whose http fields
    equal the given values."""
    out = []
    for ev in evs:
        x = ev["http"]
        if ev["type"] == "http_exchange" or x.get("kind") != kind:
            continue
        if all(x.get(k) == v for k, v in fields.items()):
            out.append(ev)
    return out


def exchanges(evs, **fields):
    return [ev for ev in evs if ev["type"] == "http_exchange"
            and all(ev["http"].get(k) == v for k, v in fields.items())]


def check_exchange(tc, x, version):
    """Paired, complete, with plausible latencies."""
    hx = x["http"]
    tc.assertTrue(hx["request_seen"] and hx["response_seen"], x)
    tc.assertFalse(hx["incomplete"], x)
    tc.assertEqual(hx["version"], version, x)
    tc.assertGreaterEqual(hx["wait_ns"], 0, x)
    tc.assertGreaterEqual(hx["total_ns"], hx["wait_ns"], x)
    tc.assertLess(hx["total_ns"], 10_000_000_000, x)


class HttpTest(unittest.TestCase):

    def test_http1_gzip_body_decoded_and_paired_on_both_ends(self):
        token = h.new_token()
        content = (f"{token} " + "compressible line of text\n" * 2000).encode()
        with h.Nginx() as ngx:
            path = ngx.put_static(f"{token}.txt", content)
            with h.Clearcap() as cap:
                curl = h.start_process(self, ["curl", "-sk", "--http1.1", "--compressed", "-o", "/dev/null",
                                              "-w", "%{http_code} %{size_download}",
                                              f"https://127.0.0.1:{ngx.port}{path}"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, _ = h.finish(curl, what="curl")
                code, size = out.decode().split()
                self.assertEqual(code, "200")
                self.assertLess(int(size), len(content) // 4, "nginx did not gzip the file")

                def both(evs):
                    c = exchanges(evs, path=path)
                    return c if len({e["pid"] for e in c}) == 2 else None

                cap.wait_for(lambda _: both(cap.http_events), what="exchanges from curl and nginx")
        evs = cap.http_events
        self.assertEqual(cap.losses, 0, cap.stderr[-2000:])
        for x in exchanges(evs, path=path):
            check_exchange(self, x, "HTTP/1.1")
            self.assertEqual(x["http"]["method"], "GET")
            self.assertEqual(x["http"]["status"], 200)
            self.assertEqual(x["http"]["authority"], f"127.0.0.1:{ngx.port}")
            self.assertEqual(x["http"]["response_body_bytes"], int(size), x)
        # curl's request is its write, the response its read; nginx the
        # other way round. The body is shown gunzipped, whole.
        req = messages(evs, "request", path=path)
        self.assertEqual({(e["comm"], e["direction"], e["type"]) for e in req},
                         {("curl", "write", "http1_request"), ("nginx", "read", "http1_request")}, req)
        resp = messages(evs, "response", status=200)
        resp = [e for e in resp if e["http"]["body_encoding"] == "gzip"]
        self.assertEqual({(e["comm"], e["direction"]) for e in resp}, {("curl", "read"), ("nginx", "write")}, resp)
        for e in resp:
            self.assertEqual(e["http"]["body_decoded"], "truncated" if e["http"]["truncated"] else "decoded", e["http"])
            self.assertTrue(e["http"]["body"].startswith(f"{token} compressible"), e["http"]["body"][:100])
            self.assertEqual(e["http"]["body"], content[:65536].decode())
            self.assertEqual(["content-encoding", "gzip"] in [[n.lower(), v] for n, v in e["http"]["headers"]], True)
        # The data events of the connection carry the kinds the layer decided.
        data = [e for e in cap.events if e["pid"] == curl.pid]
        self.assertTrue(data)
        for e in data:
            self.assertEqual(e["type"], "http1_request" if e["direction"] == "write" else "http1_response", h.describe(e))
        self.assertRegex(cap.stderr, r"http: \d+ connections, \d+ messages")

    def test_chunked_upload_and_pipelined_requests(self):
        token = h.new_token()
        body = h.text_body(1 << 20, token)
        with h.Nginx() as ngx, tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "body")
            with open(src, "wb") as f:
                f.write(body)
            with h.Clearcap() as cap:
                curl = h.start_process(self, ["curl", "-sk", "--http1.1", "-H", "Transfer-Encoding: chunked",
                                              "-T", src, "-o", "/dev/null", "-w", "%{http_code}",
                                              f"https://127.0.0.1:{ngx.port}/upload/{token}"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, _ = h.finish(curl, what="curl upload")
                self.assertIn(out.decode(), ("201", "204"))
                # Three requests in one write on one connection.
                paths = [f"/{token}/p{i}" for i in range(3)]
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", ngx.port), timeout=30)) as s:
                    s.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: pipelined.test\r\n\r\n".encode() for p in paths))
                    got = b""
                    while got.count(h.RESPONSE_MARKER.encode()) < 3:
                        chunk = s.recv(65536)
                        self.assertTrue(chunk, got)
                        got += chunk

                def done(_):
                    evs = cap.http_events
                    up = exchanges(evs, path=f"/upload/{token}")
                    pl = [x for x in exchanges(evs) if x["http"]["path"].startswith(f"/{token}/p")
                          and x["comm"] == "nginx"]
                    return (up, pl) if len(up) == 2 and len(pl) == 3 else None

                up, pl = cap.wait_for(done, what="upload and pipelined exchanges")
        for x in up:
            check_exchange(self, x, "HTTP/1.1")
            self.assertEqual(x["http"]["method"], "PUT")
            self.assertEqual(x["http"]["request_body_bytes"], len(body), x)
            self.assertIn(x["http"]["status"], (201, 204))
        # The request message keeps the first --http-body-max bytes, marked cut.
        for m in messages(cap.http_events, "request", path=f"/upload/{token}"):
            self.assertTrue(m["http"]["truncated"])
            self.assertEqual(m["http"]["body"], body[:65536].decode())
            self.assertIn(["Transfer-Encoding", "chunked"], m["http"]["headers"])
        # Pipelined: paired in order, each with its own path.
        self.assertEqual([x["http"]["path"] for x in pl], paths)
        for x in pl:
            check_exchange(self, x, "HTTP/1.1")
            self.assertEqual(x["http"]["authority"], "pipelined.test")

    def test_http2_curl_streams_decoded_and_paired(self):
        token = h.new_token()
        with h.Nginx(http2=True) as ngx:
            paths = [f"/{token}/a", f"/{token}/b"]
            with h.Clearcap() as cap:
                curl = h.start_process(self, ["curl", "-sk", "--http2", "-o", "/dev/null", "-o", "/dev/null",
                                              *[f"https://127.0.0.1:{ngx.port}{p}" for p in paths]],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                h.finish(curl, what="curl")

                def done(_):
                    xs = [x for x in exchanges(cap.http_events) if x["http"]["path"] in paths]
                    return xs if len(xs) == 4 else None

                xs = cap.wait_for(done, what="HTTP/2 exchanges from curl and nginx")
        for x in xs:
            check_exchange(self, x, "HTTP/2")
            self.assertEqual(x["http"]["method"], "GET")
            self.assertEqual(x["http"]["status"], 200)
            self.assertEqual(x["http"]["stream_id"] % 2, 1, x)
            self.assertEqual(x["http"]["authority"], f"127.0.0.1:{ngx.port}")
        mine = [x for x in xs if x["pid"] == curl.pid]
        self.assertEqual(sorted(x["http"]["path"] for x in mine), paths)
        # Responses decoded: the body is nginx's marker; requests from curl's writes.
        resp = [m for m in messages(cap.http_events, "response") if m["pid"] == curl.pid]
        self.assertEqual(len(resp), 2, resp)
        for m in resp:
            self.assertEqual(m["type"], "http2_response")
            self.assertEqual(m["direction"], "read")
            self.assertEqual(m["http"]["body"], h.RESPONSE_MARKER + "\n")
            self.assertFalse(m["http"]["headers_unknown"])
            self.assertIn(["content-type", "text/plain"], m["http"]["headers"])
        data = [e for e in cap.events if e["pid"] == curl.pid]
        self.assertTrue(data)
        for e in data:
            self.assertEqual(e["type"], "http2_request" if e["direction"] == "write" else "http2_response",
                             h.describe(e))

    def _h2_client(self, port, paths, *extra):
        return h.start_process(self, [h.test_python(), "-B", H2_CLIENT, "--port", str(port), *extra, *paths],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_h2_concurrent_streams_on_one_connection(self):
        token = h.new_token()
        with h.Nginx(http2=True) as ngx:
            paths = [f"/{token}/s{i}" for i in range(6)]
            with h.Clearcap() as cap:
                cli = self._h2_client(ngx.port, paths, "--header", f"x-token={token}")
                out, _ = h.finish(cli, what="h2 client")
                result = json.loads(out.decode().splitlines()[-1])
                self.assertEqual({s["status"] for s in result["streams"]}, {200})

                def done(_):
                    xs = [x for x in exchanges(cap.http_events) if x["pid"] == cli.pid]
                    return xs if len(xs) == len(paths) else None

                xs = cap.wait_for(done, what="the client's six exchanges")
        by_stream = {s["stream_id"]: s["path"] for s in result["streams"]}
        for x in xs:
            check_exchange(self, x, "HTTP/2")
            self.assertEqual(x["http"]["path"], by_stream[x["http"]["stream_id"]], x)
        reqs = [m for m in messages(cap.http_events, "request") if m["pid"] == cli.pid]
        self.assertEqual(len(reqs), len(paths))
        for m in reqs:
            self.assertIn(["x-token", token], m["http"]["headers"])

    def test_h2_connection_picked_up_midway(self):
        token = h.new_token()
        with h.Nginx(http2=True) as ngx:
            paths = [f"/{token}/m{i}" for i in range(5)]
            cli = self._h2_client(ngx.port, paths, "--pause-after-first", "--header", f"x-token={token}")
            first = h.read_json_line(cli)
            self.assertEqual(first["event"], "paused")
            with h.Clearcap() as cap:
                cli.stdin.write(b"go\n")
                cli.stdin.flush()
                out, _ = h.finish(cli, what="h2 client")
                result = json.loads(out.decode().splitlines()[-1])
                self.assertEqual(len(result["streams"]), 4)

                def done(_):
                    xs = [x for x in exchanges(cap.http_events) if x["pid"] == cli.pid]
                    return xs if len(xs) == 4 else None

                xs = cap.wait_for(done, what="the exchanges after the pick-up")
        by_stream = {s["stream_id"]: s["path"] for s in result["streams"]}
        # Paired by stream id; what HPACK cannot decode (the encoder's table
        # was filled before capture) is reported as such, never guessed.
        self.assertEqual(sorted(x["http"]["stream_id"] for x in xs), sorted(by_stream))
        for m in [m for m in cap.http_events if m["pid"] == cli.pid and m["type"] != "http_exchange"]:
            hx = m["http"]
            if hx["headers_unknown"]:
                self.assertEqual(hx["headers"], [])
            elif hx["kind"] == "request":
                self.assertEqual(hx["path"], by_stream[hx["stream_id"]], m)
            if hx["kind"] == "response":
                self.assertEqual(hx["body"], h.RESPONSE_MARKER + "\n")
        self.assertRegex(cap.stderr, r"http: .*header blocks undecodable")

    def test_http_summary_prints_one_line_per_exchange(self):
        token = h.new_token()
        with h.Nginx() as ngx, tempfile.TemporaryDirectory() as tmp:
            dest = os.path.join(tmp, "summary.txt")
            with h.Clearcap(["--http-summary", "--eventaddr", dest, "--listen", "127.0.0.1:0"], fmt="text") as cap:
                addr = r.api_addr(cap)
                for i in range(3):
                    h.curl_get(self, ngx.port, f"/{token}/{i}")
                h.wait_for(lambda: os.path.exists(dest) and open(dest).read().count(token) >= 6, 10,
                           what="six summary lines")
                # The stage's counters in /metrics and /status, from the same table.
                status, metrics = r.api(addr, "GET", "/metrics")
                self.assertEqual(status, 200)
                status, body = r.api(addr, "GET", "/status")
                self.assertEqual(status, 200)
            lines = open(dest).read().splitlines()
            for name, want in (("exchanges", 6), ("messages", 12), ("connections", 6), ("parse_errors", 0)):
                m = re.search(rf"^clearcap_http_{name}_total (\d+)$", metrics, re.M)
                self.assertTrue(m, metrics)
                self.assertEqual(int(m.group(1)), want, name)
                self.assertEqual(body["data"]["counters"][f"http_{name}"], want, body)
        mine = [ln for ln in lines if token in ln]
        self.assertEqual(len(mine), 6, lines)  # curl's view and nginx's, per request
        pat = re.compile(r"^\S+ (curl|nginx) pid=\d+ .* conn=\d+ http_exchange GET 127\.0\.0\.1:%d /%s/(\d) -> 200 "
                         r"HTTP/1\.1 wait \d+\.\d{3} ms total \d+\.\d{3} ms request \d+\+0 B response \d+\+\d+ B$"
                         % (ngx.port, token))
        for ln in mine:
            self.assertRegex(ln, pat)
        # Nothing but exchanges.
        self.assertEqual([ln for ln in lines if ln and "http_exchange" not in ln], [])

    def test_har_export_of_an_http2_capture(self):
        token = h.new_token()
        with h.Nginx(http2=True) as ngx, tempfile.TemporaryDirectory() as tmp:
            ccap = os.path.join(tmp, "cap.ccap")
            paths = [f"/{token}/x", f"/{token}/y"]
            # curl's first connection has its addresses only with the
            # tracepoints attached from the start; the HAR keeps one end per
            # 4-tuple, which needs them.
            with h.Clearcap(["-w", ccap, "--syscall-fd", "always"]) as cap:
                curl = h.start_process(self, ["curl", "-sk", "--http2", "-o", "/dev/null", "-o", "/dev/null",
                                              *[f"https://127.0.0.1:{ngx.port}{p}" for p in paths]],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                h.finish(curl, what="curl")
                h.wait_for(lambda: ngx.access_log_entry(paths[1]), 5, what="nginx served both")
                time.sleep(1.5)  # the capture file's frame closes after 1 s
            self.assertEqual(cap.losses, 0, cap.stderr[-2000:])
            har = os.path.join(tmp, "cap.har")
            ex = h.clearcap_run("export", ccap, "-o", har)
            self.assertEqual(ex.returncode, 0, ex.stderr.decode())
            with open(har) as f:
                doc = json.load(f)
        self.assertEqual(doc["log"]["version"], "1.2")
        entries = [e for e in doc["log"]["entries"] if token in e["request"]["url"]]
        # One process per 4-tuple: curl's or nginx's view of each stream, not both.
        self.assertEqual(sorted(e["request"]["url"] for e in entries),
                         [f"https://127.0.0.1:{ngx.port}{p}" for p in paths], json.dumps(entries)[:3000])
        for e in entries:
            self.assertEqual(e["request"]["httpVersion"], "HTTP/2")
            self.assertEqual(e["request"]["method"], "GET")
            self.assertEqual(e["response"]["status"], 200)
            self.assertEqual(e["response"]["content"]["text"], h.RESPONSE_MARKER + "\n")
            self.assertIn({"name": ":path", "value": e["request"]["url"].split(str(ngx.port), 1)[1]},
                          e["request"]["headers"])
            self.assertGreaterEqual(e["timings"]["wait"], 0)
            self.assertRegex(e["comment"], r"^pid=\d+ conn_id=\d+ stream=[13]$")


if __name__ == "__main__":
    unittest.main()
