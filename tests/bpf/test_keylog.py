"""clearcap tls -m keylog: curl -> our nginx over TLS 1.2 and TLS 1.3 while
tshark captures loopback on nginx's port; tshark with only clearcap's key log
decrypts each request carrying this test's token, and without it does not.
The key file is private (0600) and holds one set of lines per handshake."""

import os
import re
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()

TLS13_LABELS = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"}
LINE_RE = re.compile(r"^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64}|[0-9a-f]{96})$")


class KeylogTest(unittest.TestCase):

    def test_tshark_decrypts_tls12_and_tls13_with_only_clearcaps_keys(self):
        tmp = tempfile.mkdtemp(prefix="clearcap-keylog-")
        keyfile = os.path.join(tmp, "keys.log")
        # A pre-existing, readable file must be narrowed to 0600: it will hold secrets.
        with open(keyfile, "w"):
            pass
        os.chmod(keyfile, 0o644)
        tokens = {"1.2": h.new_token(), "1.3": h.new_token()}
        with h.Nginx() as ngx:
            with h.Clearcap(["-m", "keylog", "-k", keyfile]) as cap:
                self.assertIn("keys: from 1", cap.stderr)
                self.assertEqual(stat.S_IMODE(os.stat(keyfile).st_mode), 0o600)

                def drive():
                    for ver, token in tokens.items():
                        tls = ["--tlsv1.2", "--tls-max", "1.2"] if ver == "1.2" else ["--tlsv1.3"]
                        curl = h.start_process(
                            self, ["curl", "-sk", "--http1.1", *tls, f"https://127.0.0.1:{ngx.port}/{token}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                        out, _ = h.finish(curl, what=f"curl TLS {ver}")
                        self.assertIn(h.RESPONSE_MARKER.encode(), out)
                # Keys are written as each handshake completes, not at exit.
                pcap, uris = h.decrypt_while_capturing(ngx, tmp, keyfile, tokens.values(), drive)
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            self.assertEqual(cap.losses, 0, cap.stderr[-3000:])

        for t in tokens.values():
            self.assertIn(f"/{t}", uris)
        # Negative: the same capture without the key log shows no request.
        plain = h.tshark_read(pcap, tmp, "http.request", fields=["http.request.uri"])
        for t in tokens.values():
            self.assertNotIn(t, plain)
        with open(pcap, "rb") as f:
            raw = f.read()
        for t in tokens.values():
            self.assertNotIn(t.encode(), raw, "the token must only be visible after decryption")

        # The file: well-formed lines, one set per handshake, both versions.
        self.assertEqual(stat.S_IMODE(os.stat(keyfile).st_mode), 0o600)
        sets: dict = {}
        with open(keyfile) as f:
            for line in f:
                m = LINE_RE.match(line.rstrip("\n"))
                self.assertIsNotNone(m, f"not an NSS key log line: {line!r}")
                label, cr, _ = m.groups()
                sets.setdefault(cr, []).append(label)
        for cr, labels in sets.items():
            self.assertEqual(len(labels), len(set(labels)), f"duplicate lines for client random {cr}: {labels}")
            self.assertTrue(labels == ["CLIENT_RANDOM"] or set(labels) == TLS13_LABELS,
                            f"incomplete set for {cr}: {labels}")
        # The handshakes of this test, by client random, from the capture.
        crs = h.tshark_read(pcap, tmp, "tls.handshake.type == 1", fields=["tls.handshake.random"]).split()
        self.assertEqual(len(crs), 2, crs)
        kinds = sorted("1.2" if sets.get(cr) == ["CLIENT_RANDOM"] else "1.3" for cr in crs if cr in sets)
        self.assertEqual(kinds, ["1.2", "1.3"], f"key sets for this test's handshakes: {[sets.get(c) for c in crs]}")

    def test_static_program_says_why_no_keys(self):
        node = h.node_bin()
        if not os.path.exists(node):
            self.skipTest(f"{node} is not installed")
        tmp = tempfile.mkdtemp(prefix="clearcap-keylog-")
        r = subprocess.run([h.clearcap_bin(), "tls", "-m", "keylog", "-k", os.path.join(tmp, "k.log"),
                            "--libssl", node], capture_output=True, timeout=120)
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(f"keys cannot be captured for {node}", err)
        self.assertIn("dlopen", err)
        self.assertIn("nothing to capture", err)


if __name__ == "__main__":
    unittest.main()
