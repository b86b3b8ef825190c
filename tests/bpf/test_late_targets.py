"""Targets that appear after start are hooked, or said to be missed.

A Python process started after clearcap, with its own copy of libssl.so.3
(LD_LIBRARY_PATH: another inode, so the probes on the system copy do not see
it), makes HTTPS requests: clearcap's periodic rescan (--rescan 1) finds the
copy, hooks it, logs "attached to ... which appeared after start" and counts
it; requests made after that are captured with the process's pid."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()

CLIENT = r"""
import json, ssl, sys, urllib.request
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
print(json.dumps({"event": "ready", "openssl": ssl.OPENSSL_VERSION}), flush=True)
for line in sys.stdin:
    token = line.strip()
    body = urllib.request.urlopen(f"https://127.0.0.1:{port}/{token}", context=ctx, timeout=30).read()
    print(json.dumps({"event": "done", "token": token, "len": len(body)}), flush=True)
"""


class LateTargetsTest(unittest.TestCase):

    def test_private_libssl_loaded_after_start_is_hooked(self):
        tmp = tempfile.mkdtemp(prefix="clearcap-late-")
        private = os.path.join(tmp, "libssl.so.3")
        shutil.copy(h.SYSTEM_LIBSSL, private)  # a new inode
        self.assertNotEqual(os.stat(private).st_ino, os.stat(h.SYSTEM_LIBSSL).st_ino)
        with h.Nginx() as ngx:
            with h.Clearcap(["--rescan", "1"]) as cap:
                env = dict(os.environ, LD_LIBRARY_PATH=tmp)
                client = h.start_process(self, [h.test_python(), "-c", CLIENT, str(ngx.port)], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                self.assertEqual(h.read_json_line(client, what="client ready")["event"], "ready")
                with open(f"/proc/{client.pid}/maps") as f:
                    self.assertIn(private, f.read(), "the client runs on the private copy")
                cap.wait_for(lambda _: re.search(r"attached to \S*libssl\.so\.3, which appeared after start",
                                                 cap.stderr), what="the rescan hooking the private copy")
                token = h.new_token()
                client.stdin.write((token + "\n").encode())
                client.stdin.flush()
                done = h.read_json_line(client, what="the request")
                self.assertEqual(done["token"], token)
                evs = cap.wait_for(lambda evs: h.matching(evs, f"GET /{token} ", pid=client.pid),
                                   what="the request through the private copy")
                client.stdin.close()
                self.assertEqual(client.wait(timeout=30), 0)
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        self.assertIn("targets that appeared after start: 1 hooked, 0 not hooked", cap.stderr)
        h.check_event_schema(self, evs[0])


if __name__ == "__main__":
    unittest.main()
