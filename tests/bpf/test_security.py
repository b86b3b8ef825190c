"""clearcap records plaintext and keys as root: what it writes is private and
what it opens cannot be redirected by another local user.

- every output file (events, log, -w capture file, every rotated piece, and
  what `clearcap export` writes) is 0600 by default, whatever the umask;
- a symlink planted at an output path, a hard link, and a key log that
  another user pre-created are refused by clearcap itself, with
  fs.protected_symlinks / fs.protected_regular off;
- `clearcap export X -o X` is refused and leaves X intact;
- the configuration API and the eCaptureQ stream serve only root and the
  user who started clearcap by default: `nobody` (a real process under
  setpriv) is refused, with a token from a 0600 file it gets in; browsers
  (foreign Origin, foreign Host, text/plain or form POSTs) are refused;
  binding beyond loopback without a token is refused; 5 000 connections
  from nobody cost clearcap no event and little CPU, and root is still
  served."""

import contextlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import remote_util as r  # noqa: E402

h.privilege_gate()

NOBODY = 65534


@contextlib.contextmanager
def sysctl(name: str, value: str):
    path = "/proc/sys/" + name.replace(".", "/")
    with open(path) as f:
        old = f.read().strip()
    with open(path, "w") as f:
        f.write(value)
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)


def shared_tmp_dir() -> str:
    """A world-writable sticky directory, like /tmp, where nobody can plant files."""
    d = tempfile.mkdtemp(prefix="clearcap-sec-")
    os.chmod(d, 0o1777)
    return d


def run_refused(tc, args, needle: str) -> str:
    """clearcap must refuse to start: non-zero exit, `needle` in stderr."""
    argv = [h.clearcap_bin(), *args]
    h.log("running (must be refused): " + " ".join(argv))
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    err = r.stderr.decode(errors="replace")
    tc.assertNotEqual(r.returncode, 0, err)
    tc.assertNotIn("ready:", err)
    tc.assertIn(needle, err)
    return err


class PrivateFilesTest(unittest.TestCase):

    def test_every_output_file_and_rotated_piece_is_0600(self):
        tmp = tempfile.mkdtemp(prefix="clearcap-private-")
        events = os.path.join(tmp, "events.jsonl")
        logf = os.path.join(tmp, "clearcap.log")
        cap_file = os.path.join(tmp, "cap.ccap")
        token = h.new_token()
        old_umask = os.umask(0)  # a permissive umask must not make files readable
        try:
            with h.Nginx() as ngx:
                with h.Clearcap(["--eventaddr", events, "-l", logf, "-w", cap_file,
                                 "--eventroratetime", "1"]) as cap:
                    # Traffic over more than two seconds: every file rotates at least once.
                    end = time.monotonic() + 2.6
                    n = 0
                    while time.monotonic() < end:
                        h.curl_get(self, ngx.port, f"/{token}-{n}")
                        n += 1
                        time.sleep(0.2)
                self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
                self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        finally:
            os.umask(old_umask)
        names = sorted(os.listdir(tmp))
        h.log(f"files: {names}")
        for stem in ("events.", "clearcap.", "cap."):
            pieces = [n for n in names if n.startswith(stem)]
            self.assertGreaterEqual(len(pieces), 2, f"{stem}: no rotated piece among {names}")
        for n in names:
            mode = stat.S_IMODE(os.stat(os.path.join(tmp, n)).st_mode)
            self.assertEqual(mode, 0o600, f"{n} is {mode:04o}")
        # What export writes holds the same plaintext.
        pieces = sorted(os.path.join(tmp, n) for n in names if n.startswith("cap."))
        for ext in ("jsonl", "pcapng", "txt"):
            out = os.path.join(tmp, f"export.{ext}")
            r = h.clearcap_run("export", *pieces, "-o", out)
            self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
            self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600, out)
        with open(os.path.join(tmp, "export.jsonl"), "rb") as f:
            self.assertIn(token.encode(), f.read())

    def test_file_mode_loosens_explicitly(self):
        tmp = tempfile.mkdtemp(prefix="clearcap-private-")
        events = os.path.join(tmp, "events.jsonl")
        with h.Clearcap(["--eventaddr", events, "--file-mode", "0640"]):
            pass
        self.assertEqual(stat.S_IMODE(os.stat(events).st_mode), 0o640)
        run_refused(self, ["tls", "--file-mode", "0604x"], "--file-mode")
        run_refused(self, ["tls", "--file-mode", "0400"], "owner must be able to read and write")

    def test_planted_links_and_foreign_files_are_refused(self):
        d = shared_tmp_dir()
        victim = os.path.join(tempfile.mkdtemp(prefix="clearcap-victim-"), "root-owned")
        with open(victim, "w") as f:
            f.write("root's file\n")
        os.chmod(victim, 0o644)
        # The kernel's own protections off: clearcap must not rely on them.
        with sysctl("fs.protected_symlinks", "0"), sysctl("fs.protected_regular", "0"), \
             sysctl("fs.protected_hardlinks", "0"):
            for flag, name in (("-w", "cap.ccap"), ("--eventaddr", "events.jsonl"), ("-l", "log.txt")):
                link = os.path.join(d, name)
                os.symlink(victim, link)
                os.lchown(link, NOBODY, NOBODY)
                run_refused(self, ["tls", flag, link], "symbolic link")
            # -m keylog: a key log that nobody pre-created (and could read).
            keys = os.path.join(d, "keys.log")
            with open(keys, "w"):
                pass
            os.chown(keys, NOBODY, NOBODY)
            os.chmod(keys, 0o600)
            run_refused(self, ["tls", "-m", "keylog", "-k", keys], "belongs to uid 65534")
            # -m pcap: a hard link to root's file.
            hard = os.path.join(d, "save.pcapng")
            os.link(victim, hard)
            run_refused(self, ["tls", "-m", "pcap", "-i", "lo", "-w", hard], "hard links")
        with open(victim) as f:
            self.assertEqual(f.read(), "root's file\n")
        self.assertEqual(stat.S_IMODE(os.stat(victim).st_mode), 0o644)
        self.assertEqual(os.path.getsize(keys), 0)

    def test_export_refuses_to_write_over_its_input(self):
        tmp = tempfile.mkdtemp(prefix="clearcap-export-")
        cap_file = os.path.join(tmp, "same.ccap")
        with h.Nginx() as ngx:
            with h.Clearcap(["-w", cap_file]) as cap:
                h.curl_get(self, ngx.port, "/" + h.new_token())
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        size = os.path.getsize(cap_file)
        self.assertGreater(size, 0)
        alias = os.path.join(tmp, "alias.jsonl")
        os.symlink(cap_file, alias)
        for out in (cap_file, alias):
            r = h.clearcap_run("export", cap_file, "-o", out, "--format", "jsonl")
            err = r.stderr.decode(errors="replace")
            self.assertEqual(r.returncode, 2, err)
            self.assertIn("is one of the input files", err)
        self.assertEqual(os.path.getsize(cap_file), size)


# Runs as nobody: one request to the API or one WebSocket upgrade, printing
# the HTTP status (0 = no answer) as JSON.
NOBODY_CLIENT = r"""
import json, socket, sys
kind, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
auth = f"Authorization: Bearer {token}\r\n" if token else ""
if kind == "ws":
    req = (f"GET /?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n")
elif kind == "post":
    body = '{"pid":1}'
    req = (f"POST /tls HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n{auth}\r\n{body}")
else:
    req = f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}\r\n"
try:
    s.sendall(req.encode())
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else 0
except OSError:
    status = 0
print(json.dumps({"status": status, "head": data[:600].decode("latin-1") if status else ""}))
"""

HOLDER = r"""
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    except OSError:
        time.sleep(0.01)
print(len(held), flush=True)
time.sleep(float(sys.argv[3]))
"""


def as_nobody(argv, **kw):
    return ["prlimit", "--nofile=8192", "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
            "--clear-groups", *argv]


def nobody_request(tc, kind: str, port: int, token: str = "") -> dict:
    out = subprocess.run(as_nobody([sys.executable, "-c", NOBODY_CLIENT, kind, str(port), token]),
                         capture_output=True, timeout=60)
    tc.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
    return json.loads(out.stdout)


def ws_status(port: int, headers: dict) -> int:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                          "Sec-WebSocket-Version": "13", **headers})
        return conn.getresponse().status
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServersTest(unittest.TestCase):

    def start(self, *extra):
        return h.Clearcap(["--listen", "127.0.0.1:0", "--ecaptureq", "ws://127.0.0.1:0/", *extra])

    def test_nobody_is_refused_by_default_and_root_served(self):
        with self.start() as cap:
            api = r.api_addr(cap)
            ws_port = int(r.ws_url(cap).rsplit(":", 1)[1].strip("/"))
            for kind, port in (("status", api[1]), ("post", api[1]), ("ws", ws_port)):
                got = nobody_request(self, kind, port)
                self.assertEqual(got["status"], 403, f"{kind}: {got}")
                self.assertIn("uid 65534 is refused", got["head"], kind)
            # Root (the user who started clearcap) is served as before, and
            # the blinding POST from nobody changed nothing.
            status, body = r.api(api, "GET", "/status")
            self.assertEqual(status, 200, body)
            self.assertEqual(body["data"]["config"]["pids"], [], body)
            self.assertEqual(ws_status(ws_port, {"Host": f"127.0.0.1:{ws_port}"}), 101)
        self.assertIn("config API: listening on", cap.stderr)

    def test_browser_requests_are_refused(self):
        with self.start() as cap:
            api = r.api_addr(cap)
            ws_port = int(r.ws_url(cap).rsplit(":", 1)[1].strip("/"))
            self.assertEqual(ws_status(ws_port, {"Origin": "https://evil.example"}), 403)
            self.assertEqual(ws_status(ws_port, {"Host": f"evil.example:{ws_port}"}), 403)
            # "Simple" requests a page may send cross-origin without a preflight.
            for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
                status, body = r.api(api, "POST", "/tls", '{"pid":1}', {"Content-Type": ctype})
                self.assertEqual(status, 415, body)
                self.assertIn("application/json", body["msg"])
            status, body = r.api(api, "POST", "/tls", '{"pid":1}',
                                 {"Content-Type": "application/json", "Origin": "https://evil.example"})
            self.assertEqual(status, 403, body)
            self.assertIn("cross-origin", body["msg"])
            self.assertEqual(r.api(api, "GET", "/status")[1]["data"]["config"]["pids"], [])
            status, body = r.api(api, "GET", "/status", headers={"Host": f"rebind.evil.example:{api[1]}"})
            self.assertEqual(status, 403, body)
            self.assertIn("DNS rebinding", body["msg"])
            status, body = r.api(api, "GET", "/metrics", headers={"Origin": "http://evil.example"})
            self.assertEqual(status, 403, body)
            status, body = r.api(api, "GET", "/status", headers={"Host": f"localhost:{api[1]}"})
            self.assertEqual(status, 200, body)

    def test_token_from_file_lets_nobody_in(self):
        tmp = tempfile.mkdtemp(prefix="clearcap-token-")
        token = h.new_token()
        tfile = os.path.join(tmp, "token")
        with open(tfile, "w") as f:
            f.write(token + "\n")
        os.chmod(tfile, 0o644)
        run_refused(self, ["tls", "--listen", "127.0.0.1:0", "--listen-token-file", tfile], "chmod 600")
        os.chmod(tfile, 0o600)
        with self.start("--listen-token-file", tfile, "--ecaptureq-token-file", tfile) as cap:
            api = r.api_addr(cap)
            ws_port = int(r.ws_url(cap).rsplit(":", 1)[1].strip("/"))
            self.assertEqual(nobody_request(self, "status", api[1], token)["status"], 200)
            self.assertEqual(nobody_request(self, "ws", ws_port, token)["status"], 101)
            self.assertEqual(nobody_request(self, "status", api[1])["status"], 401)
            self.assertEqual(nobody_request(self, "ws", ws_port, "wrong-token")["status"], 401)
            # The token is in no process's command line.
            with open(f"/proc/{cap.proc.pid}/cmdline", "rb") as f:
                self.assertNotIn(token.encode(), f.read())
        # The environment works too.
        env_cap = h.Clearcap(["--listen", "127.0.0.1:0"])
        os.environ["CLEARCAP_LISTEN_TOKEN"] = token
        try:
            with env_cap as cap:
                api = r.api_addr(cap)
                self.assertEqual(r.api(api, "GET", "/status")[0], 401)
                self.assertEqual(r.api(api, "GET", "/status", headers={"Authorization": f"Bearer {token}"})[0], 200)
        finally:
            del os.environ["CLEARCAP_LISTEN_TOKEN"]

    def test_beyond_loopback_needs_a_token(self):
        run_refused(self, ["tls", "--listen", "0.0.0.0:0"], "needs a token")
        run_refused(self, ["tls", "--ecaptureq", "ws://0.0.0.0:0/"], "needs a token")
        run_refused(self, ["tls", "--listen", "127.0.0.1:0", "--listen-token", "a token with spaces"],
                    "printable ASCII")

    def test_5000_connections_from_nobody_cost_nothing(self):
        with h.Nginx() as ngx:
            with self.start() as cap:
                api = r.api_addr(cap)
                cpu0 = cpu_seconds(cap.proc.pid)
                t0 = time.monotonic()
                holder = subprocess.Popen(as_nobody([sys.executable, "-c", HOLDER, str(api[1]), "5000", "6"]),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                try:
                    token = h.new_token()
                    for i in range(20):
                        h.curl_get(self, ngx.port, f"/{token}-{i}")
                    status, body = r.api(api, "GET", "/status")
                    self.assertEqual(status, 200, body)
                    out, err = holder.communicate(timeout=120)
                finally:
                    h.kill_and_reap(holder)
                self.assertEqual(holder.returncode, 0, err.decode(errors="replace"))
                h.log(f"nobody opened {out.decode().strip()} connections")
                cpu = (cpu_seconds(cap.proc.pid) - cpu0) / (time.monotonic() - t0)
                h.log(f"clearcap CPU while refusing: {cpu:.2f} cores")
                self.assertLess(cpu, 0.5, "refusing connections must not spin")
                cap.wait_for(lambda evs: sum(1 for e in evs if h.has(e, f"GET /{token}-") and
                                             e.get("source") == h.SYSTEM_SSL_WRITE) >= 20,
                             what="every request of root's curl")
            self.assertEqual(cap.losses, 0, cap.stderr[-3000:])


if __name__ == "__main__":
    unittest.main()
