"""clearcap tls -m pcap: packets of lo and the TLS keys in one pcapng file.
curl fetches this test's tokens from our nginx over TLS 1.2 and TLS 1.3 while
clearcap captures 'tcp port PORT'; tshark with an empty profile and no key
log file decrypts both requests (the keys are in Decryption Secrets Blocks),
the packets carry their sender's pid/comm, and a request to a second nginx
(another port) is left out by the filter."""

import os
import stat
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()

DSB = 0x0000000A
TLSK = 0x544C534B


def pcapng_blocks(path):
    """(type, body) of every block; fails on a malformed length."""
    with open(path, "rb") as f:
        raw = f.read()
    out, off = [], 0
    while off < len(raw):
        btype, blen = struct.unpack_from("<II", raw, off)
        assert blen >= 12 and blen % 4 == 0 and off + blen <= len(raw), f"bad block at {off}"
        assert struct.unpack_from("<I", raw, off + blen - 4)[0] == blen, f"trailing length at {off}"
        out.append((btype, raw[off + 8:off + blen - 4]))
        off += blen
    return out


class PcapTest(unittest.TestCase):

    def test_tshark_decrypts_from_the_pcapng_alone(self):
        tmp = tempfile.mkdtemp(prefix="clearcap-pcap-")
        out = os.path.join(tmp, "out.pcapng")
        tokens = {"1.2": h.new_token(), "1.3": h.new_token()}
        other_token = h.new_token()
        curl_pids = {}
        with h.Nginx() as ngx, h.Nginx() as other:
            with h.Clearcap(["-m", "pcap", "-i", "lo", "-w", out, f"tcp port {ngx.port}"]) as cap:
                self.assertIn("egress only: loopback", cap.stderr)
                for ver, token in tokens.items():
                    tls = ["--tlsv1.2", "--tls-max", "1.2"] if ver == "1.2" else ["--tlsv1.3"]
                    curl = h.start_process(
                        self, ["curl", "-sk", "--http1.1", *tls, f"https://127.0.0.1:{ngx.port}/{token}"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    curl_pids[ver] = curl.pid
                    body, _ = h.finish(curl, what=f"curl TLS {ver}")
                    self.assertIn(h.RESPONSE_MARKER.encode(), body)
                curl = h.start_process(self, ["curl", "-sk", "--http1.1", f"https://127.0.0.1:{other.port}/{other_token}"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                h.finish(curl, what="curl to the second nginx")
                h.wait_for(lambda: all(ngx.access_log_entry(t) for t in tokens.values())
                           and other.access_log_entry(other_token), 10, what="nginx access log lines")
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
            self.assertRegex(cap.stderr, r"written without keys \(grace period over or limit\): 0 ")
            worker = ngx.worker_pids[0]

        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600, "the pcapng holds secrets")
        # The judge: no key log file, empty profile.
        uris = h.tshark_read(out, tmp, "http", fields=["http.request.uri"]).split()
        for ver, t in tokens.items():
            self.assertIn(f"/{t}", uris, f"TLS {ver} request not decrypted; got {uris}")
        self.assertNotIn(f"/{other_token}", uris)
        hellos = h.tshark_read(out, tmp, "tls.handshake.type == 1", fields=["tcp.dstport"]).split()
        self.assertEqual(hellos, [str(ngx.port)] * 2, "exactly this test's two ClientHellos")
        self.assertEqual(h.tshark_read(out, tmp, f"tcp.port == {other.port}"), "",
                         "the filter must leave out the second nginx")

        # The structure: SHB, one IDB named lo with ns timestamps, DSBs with 'TLSK'.
        blocks = pcapng_blocks(out)
        self.assertEqual(blocks[0][0], 0x0A0D0D0A)
        idbs = [b for t, b in blocks if t == 1]
        self.assertEqual(len(idbs), 1)
        self.assertEqual(struct.unpack_from("<H", idbs[0])[0], 1, "LINKTYPE_ETHERNET")
        self.assertIn(struct.pack("<HH", 2, 2) + b"lo\0\0", idbs[0])
        self.assertIn(struct.pack("<HH", 9, 1) + b"\x09", idbs[0])
        dsbs = [b for t, b in blocks if t == DSB]
        self.assertGreaterEqual(len(dsbs), 2)
        for b in dsbs:
            stype, slen = struct.unpack_from("<II", b)
            self.assertEqual(stype, TLSK)
            text = b[8:8 + slen].decode()
            self.assertRegex(text, r"^(CLIENT_RANDOM|CLIENT_HANDSHAKE_TRAFFIC_SECRET) [0-9a-f]{64} ")
        with open(out, "rb") as f:
            raw = f.read()
        self.assertNotIn(other_token.encode(), raw)
        # Every DSB precedes the first ServerHello-carrying EPB of its connection:
        # tshark decrypting both versions above already proves the order.

        # Attribution: TLS records sent by curl carry curl's pid, those sent
        # by nginx its worker's.
        rows = h.tshark_read(out, tmp, "tls.app_data", fields=["tcp.srcport", "frame.comment"]).splitlines()
        self.assertTrue(rows)
        seen_curl = set()
        for row in rows:
            sport, _, comment = row.partition("\t")
            if sport == str(ngx.port):
                self.assertEqual(comment, f"pid={worker} comm=nginx", row)
            else:
                self.assertRegex(comment, r"^pid=\d+ comm=curl$", row)
                seen_curl.add(int(comment.split()[0][4:]))
        self.assertEqual(seen_curl, set(curl_pids.values()))

    def test_bad_filter_and_missing_interface_are_clear_errors(self):
        r = h.clearcap_run("tls", "-m", "pcap", "-i", "lo", "-w", os.devnull, "tcp", "port", "nonsense")
        err = r.stderr.decode(errors="replace")
        self.assertNotEqual(r.returncode, 0, err)
        self.assertIn("bad filter expression 'tcp port nonsense'", err)
        self.assertIn("unknown port", err)  # libpcap's own words
        r = h.clearcap_run("tls", "-m", "pcapng", "tcp", "port", "443")
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 2, err)
        self.assertIn("-i IFACE", err)
        r = h.clearcap_run("tls", "-m", "pcap", "-i", "nosuchif0")
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 1, err)
        self.assertIn("no network interface 'nosuchif0'", err)


if __name__ == "__main__":
    unittest.main()
