"""clearcap records plaintext and keys as root: what it writes is private and
what it opens cannot be redirected by another local user.

- every output file (events, log, -w capture file, every rotated piece, and
  what `clearcap export` writes) is 0600 by default, whatever the umask;
- a symlink planted at an output path, a hard link, and a key log that
  another user pre-created are refused by clearcap itself, with
  fs.protected_symlinks / fs.protected_regular off;
- `clearcap export X -o X` is refused and leaves X intact."""

import contextlib
import os
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

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


def curl(tc, port: int, path: str) -> None:
    p = h.start_process(tc, ["curl", "-sk", "--http1.1", f"https://127.0.0.1:{port}{path}"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = h.finish(p, what="curl")
    tc.assertIn(h.RESPONSE_MARKER.encode(), out)


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
                        curl(self, ngx.port, f"/{token}-{n}")
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
                curl(self, ngx.port, "/" + h.new_token())
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


if __name__ == "__main__":
    unittest.main()
