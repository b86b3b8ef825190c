"""clearcap nss: real NSS clients against our own nginx over TLS 1.2 and 1.3.

nss_client (tests/testprogs/nss_client.c) sends its request with PR_Write or
PR_Send and, on the same thread while the TLS session is open, writes a token
to a plain file with PR_Write: the request and the response must be captured
with the connection's tuple, and the plain-file write must not be. tstclnt
(libnss3-tools) reads its request from stdin through PR_Read on a plain file
and sends it with PR_Send: only the send may be captured.
"""

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()

NSS_CLIENT = os.path.join(os.path.dirname(h.clearcap_bin()), "testprogs", "nss_client")
TSTCLNT = "/usr/bin/tstclnt"


class NssTest(unittest.TestCase):

    def _check_pair(self, cap, ngx, pid, request_line, comm, write_sources, read_sources):
        h.check_client_exchange(self, cap, ngx.port, pid, request_line, comm, "nss", write_sources, read_sources)

    def _nss_client(self, version, send):
        token = h.new_token()
        file_token = h.new_token()
        request_line = f"GET /{token} HTTP/1.1\r\n"
        with tempfile.TemporaryDirectory() as tmp, h.Nginx() as ngx:
            plain = os.path.join(tmp, "plain.txt")
            with h.Clearcap(module="nss") as cap:
                argv = [NSS_CLIENT, "127.0.0.1", str(ngx.port), f"/{token}", f"--{version}",
                        "--file", plain, "--file-text", f"plain-{file_token}\n"]
                if send:
                    argv.append("--send")
                cli = h.start_process(self, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, _ = h.finish(cli, what="nss_client")
                self.assertIn(h.RESPONSE_MARKER.encode(), out)
                with open(plain) as f:
                    self.assertEqual(f.read(), f"plain-{file_token}\n")
                srcs = (["PR_Send"], ["PR_Recv"]) if send else (["PR_Write"], ["PR_Read"])
                self._check_pair(cap, ngx, cli.pid, request_line, "nss_client", *srcs)
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, "summary must say losses: 0\n" + cap.stderr[-3000:])
        self.assertFalse(h.matching(cap.events, file_token),
                         "a plain-file PR_Write was captured as TLS data:\n"
                         + "\n".join(map(h.describe, h.matching(cap.events, file_token))))
        self.assertFalse(h.matching(cap.events, comm="nginx"), "nginx does not use NSS")

    def test_write_read_tls13(self):
        self._nss_client("tls1.3", send=False)

    def test_send_recv_tls12(self):
        self._nss_client("tls1.2", send=True)

    def test_tstclnt(self):
        token = h.new_token()
        request_line = f"GET /{token} HTTP/1.1\r\n"
        request = request_line + "Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
        with tempfile.TemporaryDirectory() as tmp, h.Nginx() as ngx:
            req_file = os.path.join(tmp, "req.txt")
            with open(req_file, "w") as f:
                f.write(request)
            with h.Clearcap(["--nspr", "/usr/lib/x86_64-linux-gnu/libnspr4.so"], module="nspr") as cap:
                with open(req_file, "rb") as stdin:
                    cli = h.start_process(
                        self, [TSTCLNT, "-h", "127.0.0.1", "-p", str(ngx.port), "-D", "-o", "-V", "tls1.3:tls1.3"],
                        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    out, _ = h.finish(cli, what="tstclnt")
                self.assertIn(h.RESPONSE_MARKER.encode(), out)
                self._check_pair(cap, ngx, cli.pid, request_line, "tstclnt", ["PR_Send", "PR_Write"],
                                 ["PR_Recv", "PR_Read"])
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, "summary must say losses: 0\n" + cap.stderr[-3000:])
        # tstclnt read the request from its stdin (a plain file) with PR_Read:
        # that read is not TLS and must not be captured.
        reads = h.matching(cap.events, request_line, pid=cli.pid, direction="read")
        self.assertFalse(reads, "plain-file PR_Read captured:\n" + "\n".join(map(h.describe, reads)))


if __name__ == "__main__":
    unittest.main()
