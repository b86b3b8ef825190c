"""Bad input gets a clear error and a non-zero exit (no root needed)."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

BIN = h.require_binary()
RUN_TIMEOUT = 30


def run(*args):
    argv = [BIN, *args]
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=RUN_TIMEOUT, start_new_session=True)
    except subprocess.TimeoutExpired:
        # subprocess.run kills the child on timeout
        raise AssertionError(f"{argv} did not exit within {RUN_TIMEOUT}s (it should refuse to start)")
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r.returncode, out


def not_running_pid() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    pid = 999999
    while pid < pid_max and os.path.exists(f"/proc/{pid}"):
        pid += 1
    return pid  # >= pid_max can never exist


class BadInputTest(unittest.TestCase):

    def test_missing_libssl(self):
        rc, out = run("tls", "--libssl", "/nonexistent")
        self.assertGreater(rc, 0, f"expected a non-zero exit, got {rc}: {out}")
        self.assertIn("/nonexistent", out, "the error must name the missing path")

    def test_dead_pid(self):
        pid = not_running_pid()
        self.assertFalse(os.path.exists(f"/proc/{pid}"))
        rc, out = run("tls", "--pid", str(pid))
        self.assertGreater(rc, 0, f"expected a non-zero exit, got {rc}: {out}")
        self.assertIn(str(pid), out, "the error must name the pid")

    def test_unknown_flag(self):
        rc, out = run("tls", "--no-such-flag-xyz")
        self.assertGreater(rc, 0, f"expected a non-zero exit, got {rc}: {out}")
        self.assertIn("no-such-flag-xyz", out, "the error must name the unknown flag")

    def test_unknown_subcommand(self):
        rc, out = run("no-such-module-xyz")
        self.assertGreater(rc, 0, f"expected a non-zero exit, got {rc}: {out}")
        self.assertIn("no-such-module-xyz", out, "the error must name the unknown subcommand")


    def test_signed_absurd_and_control_character_values(self):
        # Each refused before any BPF work, naming the flag.
        for args, flag in ((["-t", "-1"], "--tsize"), (["-u", "-5"], "--uid"), (["--rotate-keep", "-2"], "--rotate-keep"),
                           (["--allow-uid", "-1"], "--allow-uid"), (["--shutdown-timeout", "0"], "--shutdown-timeout"),
                           (["--rescan", "-1"], "--rescan"), (["-m", "pcap", "-i", "lo", "--snaplen", "300000"], "--snaplen"),
                           (["-w", "a\nb"], "--capture-file"), (["--eventaddr", "x\ty"], "--eventaddr"),
                           (["--libssl", "/lib/x\x1b[31m"], "--libssl"), (["--file-mode", "4777"], "--file-mode")):
            rc, out = run("tls", *args)
            self.assertGreater(rc, 0, f"{args}: expected a non-zero exit, got {rc}: {out}")
            self.assertIn(flag, out, f"{args}: the error must name the flag")
            self.assertNotIn("ready:", out)


if __name__ == "__main__":
    unittest.main()
