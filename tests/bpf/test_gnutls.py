"""clearcap gnutls: real GnuTLS clients (gnutls-cli, wget) against our own
nginx over TLS 1.2 and TLS 1.3, captured system-wide.

Each client's request (with this test's token) must be captured once in its
write and the response marker in its read, with the connection's tuple; nginx
(OpenSSL) is not a GnuTLS user and must not appear; the summary is clean. The
configuration API answers for the gnutls module.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import remote_util as r  # noqa: E402

h.privilege_gate()

GNUTLS_CLI = "/usr/bin/gnutls-cli"
WGET = "/usr/bin/wget"


class GnutlsTest(unittest.TestCase):

    def _check_pair(self, cap, ngx, pid, request_line, comm):
        h.check_client_exchange(self, cap, ngx.port, pid, request_line, comm, "gnutls",
                                ("gnutls_record_send", "gnutls_record_send_range"),
                                ("gnutls_record_recv", "gnutls_record_recv_seq"))

    def _gnutls_cli(self, version):
        token = h.new_token()
        request_line = f"GET /{token} HTTP/1.1\r\n"
        request = request_line + "Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
        with h.Nginx() as ngx:
            with h.Clearcap(module="gnutls") as cap:
                cli = h.start_process(
                    self, [GNUTLS_CLI, "--insecure", f"--priority=NORMAL:-VERS-ALL:+VERS-{version}",
                           "--logfile=/dev/null", "-p", str(ngx.port), "127.0.0.1"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, err = cli.communicate(request.encode(), timeout=h.CLIENT_TIMEOUT)
                self.assertEqual(cli.returncode, 0, err.decode(errors="replace")[-2000:])
                self.assertIn(h.RESPONSE_MARKER.encode(), out)
                self._check_pair(cap, ngx, cli.pid, request_line, "gnutls-cli")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, "summary must say losses: 0\n" + cap.stderr[-3000:])
        self.assertFalse(h.matching(cap.events, comm="nginx"), "nginx does not use GnuTLS")

    def test_gnutls_cli_tls13(self):
        self._gnutls_cli("TLS1.3")

    def test_gnutls_cli_tls12(self):
        self._gnutls_cli("TLS1.2")

    def test_wget(self):
        token = h.new_token()
        request_line = f"GET /{token} HTTP/1.1\r\n"
        with h.Nginx() as ngx:
            with h.Clearcap(["--gnutls", "/usr/lib/x86_64-linux-gnu/libgnutls.so.30"], module="gnu") as cap:
                wget = h.start_process(
                    self, [WGET, "-q", "-O", "-", "--no-check-certificate", f"https://127.0.0.1:{ngx.port}/{token}"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, _ = h.finish(wget, what="wget")
                self.assertIn(h.RESPONSE_MARKER.encode(), out)
                self._check_pair(cap, ngx, wget.pid, request_line, "wget")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, "summary must say losses: 0\n" + cap.stderr[-3000:])

    def test_capture_file_and_export(self):
        """-w records gnutls events raw; export turns them back into JSON
        lines naming the module and the GnuTLS function."""
        token = h.new_token()
        with tempfile.TemporaryDirectory() as tmp, h.Nginx() as ngx:
            ccap = os.path.join(tmp, "g.ccap")
            with h.Clearcap(["-w", ccap], module="gnutls") as cap:
                wget = h.start_process(
                    self, [WGET, "-q", "-O", "-", "--no-check-certificate", f"https://127.0.0.1:{ngx.port}/{token}"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, _ = h.finish(wget, what="wget")
                self.assertIn(h.RESPONSE_MARKER.encode(), out)
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
            jsonl = os.path.join(tmp, "g.jsonl")
            res = h.clearcap_run("export", ccap, "-o", jsonl)
            self.assertEqual(res.returncode, 0, res.stderr)
            with open(jsonl, "rb") as f:
                events = [h.parse_json_line(line) for line in f if line.strip()]
        w = h.matching(events, f"GET /{token} HTTP/1.1", pid=wget.pid, direction="write")
        rd = h.matching(events, h.RESPONSE_MARKER, pid=wget.pid, direction="read")
        self.assertEqual(len(w), 1, events)
        self.assertTrue(rd, events)
        for ev in (w[0], rd[0]):
            h.check_event_schema(self, ev, module="gnutls")
            self.assertEqual(ev["dst_port" if ev is w[0] else "src_port"], ngx.port, h.describe(ev))

    def _gnutls_cli_get(self, port, token, version):
        request = f"GET /{token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        cli = h.start_process(
            self, [GNUTLS_CLI, "--insecure", f"--priority=NORMAL:-VERS-ALL:+VERS-{version}",
                   "--logfile=/dev/null", "-p", str(port), "127.0.0.1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = cli.communicate(request.encode(), timeout=h.CLIENT_TIMEOUT)
        self.assertEqual(cli.returncode, 0, err.decode(errors="replace")[-2000:])
        self.assertIn(h.RESPONSE_MARKER.encode(), out)

    def test_keylog_decrypts_tls12_and_tls13(self):
        """-m keylog: GnuTLS's secrets, learned from its built-in key log
        callback, let tshark decrypt gnutls-cli's requests; nothing else does."""
        tmp = tempfile.mkdtemp(prefix="clearcap-gnutls-keylog-")
        keyfile = os.path.join(tmp, "keys.log")
        tokens = {"TLS1.2": h.new_token(), "TLS1.3": h.new_token()}
        with h.Nginx() as ngx:
            with h.Clearcap(["-m", "keylog", "-k", keyfile], module="gnutls") as cap:
                self.assertIn("keys: from 1", cap.stderr)

                def drive():
                    for ver, token in tokens.items():
                        self._gnutls_cli_get(ngx.port, token, ver)
                pcap, uris = h.decrypt_while_capturing(ngx, tmp, keyfile, tokens.values(), drive)
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        for t in tokens.values():
            self.assertIn(f"/{t}", uris)
        plain = h.tshark_read(pcap, tmp, "http.request", fields=["http.request.uri"])
        for t in tokens.values():
            self.assertNotIn(t, plain)
        with open(keyfile) as f:
            labels = [line.split()[0] for line in f if line.strip()]
        self.assertEqual(labels.count("CLIENT_RANDOM"), 1, labels)  # the TLS 1.2 handshake
        self.assertEqual(labels.count("CLIENT_TRAFFIC_SECRET_0"), 1, labels)  # the TLS 1.3 one

    def test_pcap_decrypts_from_the_pcapng_alone(self):
        """-m pcap: packets and GnuTLS's keys (Decryption Secrets Blocks) in one file."""
        tmp = tempfile.mkdtemp(prefix="clearcap-gnutls-pcap-")
        out = os.path.join(tmp, "out.pcapng")
        token = h.new_token()
        with h.Nginx() as ngx:
            with h.Clearcap(["-m", "pcap", "-i", "lo", "-w", out, f"tcp port {ngx.port}"], module="gnutls") as cap:
                self._gnutls_cli_get(ngx.port, token, "TLS1.3")
                h.wait_for(lambda: ngx.access_log_entry(token), 10, what="nginx access log line")
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        uris = h.tshark_read(out, tmp, "http", fields=["http.request.uri"]).split()
        self.assertIn(f"/{token}", uris)

    def test_config_api_speaks_for_gnutls(self):
        token = h.new_token()
        with h.Clearcap(["--listen", "127.0.0.1:0"], module="gnutls") as cap:
            addr = r.api_addr(cap)
            status, st = r.api(addr, "GET", "/status")
            self.assertEqual(status, 200)
            body = st
            self.assertEqual(body["module_type"], "gnutls")
            self.assertIn("gnutls", body["data"]["config"])
            self.assertTrue(any("libgnutls" in t for t in body["data"]["probes"]["targets"]), st)
            r.check_reply(self, r.api(addr, "POST", "/gnu", json.dumps({"gnutls": f"/nonexistent/{token}.so"})),
                          400, 5, "gnutls", module="gnutls")
            r.check_reply(self, r.api(addr, "POST", "/tls", '{"pid": 1}'), 400, 1, "gnutls", module="gnutls")
            r.check_reply(self, r.api(addr, "POST", "/gnutls", json.dumps({"pid": os.getpid()})), 200, 0,
                          module="gnutls")
            status, st = r.api(addr, "GET", "/status")
            self.assertEqual(st["data"]["config"]["pids"], [os.getpid()])
            status, metrics = r.api(addr, "GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertIn('clearcap_info{module="gnutls"} 1', metrics)
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])


if __name__ == "__main__":
    unittest.main()
