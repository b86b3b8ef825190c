"""Replay tier: the committed capture files of every module (recorded by
tests/replay/record.py from real clients) run through clearcap export - the
capture-file source, the processor, the stream tracker and the JSON encoder,
the path live capture runs - and must give exactly the golden JSON lines.
No privileges needed."""

import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(HERE, "data")
BIN = os.environ.get("CLEARCAP_BIN") or os.path.join(REPO, "build", "clearcap")
MODULES = ("tls", "gnutls", "nss")


class ReplayTest(unittest.TestCase):

    def test_every_module_has_a_recording(self):
        for m in MODULES:
            self.assertTrue(os.path.exists(os.path.join(DATA, f"{m}.ccap")), m)
            self.assertTrue(os.path.exists(os.path.join(DATA, f"{m}.golden.jsonl")), m)

    def test_export_gives_the_golden_lines(self):
        for ccap in sorted(glob.glob(os.path.join(DATA, "*.ccap"))):
            module = os.path.basename(ccap)[:-len(".ccap")]
            with self.subTest(module=module), tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "out.jsonl")
                res = subprocess.run([BIN, "export", "--no-progress", ccap, "-o", out],
                                     capture_output=True, text=True, timeout=60)
                self.assertEqual(res.returncode, 0, res.stderr)
                with open(out) as f:
                    got = f.read().splitlines()
                with open(os.path.join(DATA, f"{module}.golden.jsonl")) as f:
                    want = f.read().splitlines()
                self.assertEqual(got, want)
                events = [json.loads(line) for line in got]
                self.assertTrue(events)
                self.assertEqual({e["module"] for e in events}, {module})
                self.assertEqual({e["direction"] for e in events}, {"write", "read"})
                self.assertTrue(any("/replay-token" in e.get("payload", "") for e in events))


if __name__ == "__main__":
    unittest.main()
