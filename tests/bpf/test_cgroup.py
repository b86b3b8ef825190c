"""--cgroup_path: a cgroup v2 filter covers the cgroup and every cgroup below
it. A client in a child cgroup of the filter is captured; nginx (outside)
and a client in a sibling cgroup are not. The configuration API moves the
filter to the sibling at run time."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import remote_util as r  # noqa: E402

h.privilege_gate()



def cgroup2_mount() -> str:
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, path, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return path
    raise AssertionError("no cgroup2 mount in /proc/self/mounts")


CGROOT = cgroup2_mount()


class CgroupTest(unittest.TestCase):

    def setUp(self):
        self.top = os.path.join(CGROOT, f"clearcap-test-{h.new_token()[:12]}")
        self.inside = os.path.join(self.top, "inside", "deeper")
        self.sibling = os.path.join(self.top, "sibling")
        os.makedirs(self.inside)
        os.makedirs(self.sibling)

    def tearDown(self):
        for d in (self.inside, os.path.dirname(self.inside), self.sibling, self.top):
            try:
                os.rmdir(d)
            except OSError as e:
                h.log(f"cannot remove {d}: {e}")

    def _client_in(self, cgroup, port, token):
        """A python TLS client started inside `cgroup`, waiting for "go"."""
        argv = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh",
                *h.py_client_argv(port, f"/{token}", "--token", token, "--wait-stdin")]
        proc = h.start_process(self, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        self.assertEqual(h.read_json_line(proc, what="client handshake")["event"], "connected")
        return proc

    def _go(self, proc, what):
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        h.finish(proc, what=what)

    def test_subtree_is_captured_and_the_rest_is_not(self):
        tok_in, tok_out, tok_late = h.new_token(), h.new_token(), h.new_token()
        with h.Nginx() as ngx:
            a = self._client_in(self.inside, ngx.port, tok_in)
            b = self._client_in(self.sibling, ngx.port, tok_out)
            with h.Clearcap(["--cgroup_path", os.path.relpath(self.top, CGROOT) + "/inside",
                             "--listen", "127.0.0.1:0"]) as cap:
                addr = r.api_addr(cap)
                self._go(a, "client in the subtree")
                self._go(b, "client in the sibling cgroup")
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{tok_in}", pid=a.pid, direction="write"),
                             what="the request of the client two levels below the filter")
                # The filter moves to the sibling: a new client there is captured.
                status, body = r.api(addr, "POST", "/tls", json.dumps({"cgroup_path": self.sibling}))
                self.assertEqual((status, body["code"]), (200, 0), body)
                c = self._client_in(self.sibling, ngx.port, tok_late)
                self._go(c, "client in the sibling, after the change")
                cap.wait_for(lambda evs: h.matching(evs, f"GET /{tok_late}", pid=c.pid, direction="write"),
                             what="the sibling's request after the filter moved")
                status, st = r.api(addr, "GET", "/status")
                self.assertEqual(st["data"]["config"]["cgroup_path"], self.sibling)
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        self.assertFalse(h.matching(cap.events, tok_out), "the sibling cgroup's client was captured before the change")
        self.assertFalse(h.matching(cap.events, comm="nginx"), "nginx is outside the filtered cgroup")

    def test_bad_cgroup_path_is_a_clear_error(self):
        res = h.clearcap_run("tls", "--cgroup_path", "/tmp")
        err = res.stderr.decode() if isinstance(res.stderr, bytes) else res.stderr
        self.assertEqual(res.returncode, 2, err)
        self.assertIn("not a cgroup v2 directory", err)


if __name__ == "__main__":
    unittest.main()
