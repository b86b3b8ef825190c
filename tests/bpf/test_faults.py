"""A full disk during capture, and space coming back: every output stays
readable before and after the gap, and the counts add up.

A 4 MiB tmpfs holds the outputs. Traffic is captured (round A), the disk is
filled, more traffic fails to be written (round B), the filler is removed,
and traffic is captured again (round C). Then:
- every line of the JSON-lines file is one strict JSON object (no torn
  record glued to the next one), and rounds A and C are in it;
- the -w capture file passes `zstd -t` and exports, rounds A and C included;
- per output, lines (or exported events) + events counted as not delivered
  = events of the run;
- -m keylog: every key-log line is whole, and the summary's "handshakes
  written" is the number of handshakes in the file."""

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()

LINE_RE = re.compile(r"^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64}|[0-9a-f]{96})$")


@contextlib.contextmanager
def small_tmpfs(size: str = "4m"):
    d = tempfile.mkdtemp(prefix="clearcap-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", d], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d], check=False)
        os.rmdir(d)


def fill(d: str) -> str:
    """Fills the file system; returns the filler's path."""
    path = os.path.join(d, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
    finally:
        os.close(fd)
    return path


def output_row(stderr: str, name: str) -> int:
    m = re.findall(rf"output {re.escape(name)}: \d+ write errors, \d+ bytes and (\d+) events not delivered", stderr)
    return int(m[-1]) if m else -1


class FaultsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="clearcap-faults-")

    def rounds(self, ngx, cap, d, tokens):
        """A, then a full disk for B, then space back for C."""
        for i in range(3):
            h.curl_get(self, ngx.port, f"/{tokens['A']}-{i}")
        cap.wait_for(lambda _: True, what="round A")
        time.sleep(1.5)  # written (the writers wake at least every 100 ms; frames close after 1 s)
        filler = fill(d)
        # More than the outputs' queues (--output-queue-mb 1) hold while the disk is full.
        for i in range(4):
            h.curl_put(self, ngx.port, f"{tokens['B']}-{i}", h.text_body(900_000, tokens["B"]), self.tmp)
        time.sleep(2)
        os.unlink(filler)
        time.sleep(6)  # the writers' backoff (at most 5 s) runs out
        for i in range(3):
            h.curl_get(self, ngx.port, f"/{tokens['C']}-{i}")
        time.sleep(1.5)

    def test_json_lines_and_capture_file_survive_a_full_disk(self):
        tokens = {k: h.new_token() for k in "ABC"}
        with small_tmpfs() as d, h.Nginx() as ngx:
            events = os.path.join(d, "events.jsonl")
            cap_file = os.path.join(d, "cap.ccap")
            with h.Clearcap(["--eventaddr", events, "-w", cap_file, "--output-queue-mb", "1"]) as cap:
                self.rounds(ngx, cap, d, tokens)
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            err = cap.stderr
            with open(events, "rb") as f:
                raw = f.read()
            lines = raw.split(b"\n")
            self.assertEqual(lines[-1], b"", "the file ends with a whole line")
            parsed = [h.parse_json_line(l) for l in lines[:-1]]  # strict: raises on a torn record
            text = raw.decode(errors="replace")
            self.assertIn(tokens["A"], text)
            self.assertIn(tokens["C"], text, "writing resumed after the gap")
            dropped = output_row(err, events)
            h.log(f"events {cap.summary_events}, lines {len(parsed)}, not delivered {dropped}")
            self.assertGreater(dropped, 0, "the full disk cost events, and they are counted")
            # Every event the output was handed is a line or counted: the
            # captured events, and the protocol layer's message and
            # exchange events (its summary line counts them).
            m = re.search(r"http: \d+ connections, (\d+) messages .*?, (\d+) exchanges", err)
            self.assertTrue(m, err[-3000:])
            added = int(m.group(1)) + int(m.group(2))
            self.assertEqual(len(parsed) + dropped, cap.summary_events + added, err[-3000:])

            r = subprocess.run(["zstd", "-t", cap_file], capture_output=True)
            self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
            out = os.path.join(tempfile.mkdtemp(prefix="clearcap-faults-"), "export.jsonl")
            r = h.clearcap_run("export", cap_file, "-o", out)
            self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
            with open(out, "rb") as f:
                exported = [h.parse_json_line(l) for l in f.read().split(b"\n") if l]
            # The records the file holds (export adds the protocol layer's
            # message and exchange events, which are derived, not stored).
            exported = [e for e in exported if "http" not in e]
            etext = "\n".join(str(h.payload_bytes(e)) for e in exported)
            self.assertIn(tokens["A"], etext)
            self.assertIn(tokens["C"], etext, "the capture file is readable after the gap")
            cdropped = output_row(err, cap_file)
            h.log(f"capture file: exported {len(exported)}, not delivered {cdropped}")
            self.assertEqual(len(exported) + cdropped, cap.summary_events, err[-3000:])

    def test_key_log_lines_stay_whole(self):
        tokens = {k: h.new_token() for k in "ABC"}
        with small_tmpfs("1m") as d, h.Nginx() as ngx:
            keys = os.path.join(d, "keys.log")
            with h.Clearcap(["-m", "keylog", "-k", keys]) as cap:
                self.rounds(ngx, cap, d, tokens)
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            with open(keys) as f:
                text = f.read()
            self.assertTrue(text.endswith("\n"))
            randoms = set()
            for line in text.splitlines():
                m = LINE_RE.match(line)
                self.assertIsNotNone(m, f"torn key-log line: {line!r}")
                randoms.add(m.group(2))
            m = re.findall(r"keys: (\d+) handshakes written", cap.stderr)
            self.assertTrue(m, cap.stderr[-2000:])
            h.log(f"handshakes in the file {len(randoms)}, summary says {m[-1]}")
            self.assertEqual(int(m[-1]), len(randoms), cap.stderr[-3000:])
            self.assertGreaterEqual(len(randoms), 6, "rounds A and C are in the file")


if __name__ == "__main__":
    unittest.main()
