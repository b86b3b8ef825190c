"""One CPU at full speed: a TLS client and server in one process over an
in-memory BIO pair (tests/testprogs/bio_loop.cpp) writing and reading 16 KiB
per iteration, 20 000 iterations (655 MB of plaintext), as fast as the
library goes.

* Default flags, JSON to a file: every byte of both streams captured (SHA-256
  of the write stream and of the read stream equal the program's own), the
  summary says losses: 0 and the output delivered everything.
* Default flags, -w: the same through the capture file and `clearcap export`.
* --mapsize 16 (64 KiB rings): records are lost, and every loss is counted:
  delivered + counted = made, in the summary, /metrics and --stats.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import remote_util as r  # noqa: E402

h.privilege_gate()

ITERATIONS = 20000
SIZE = 16384

# The outputs go to memory (tmpfs), not to the disk under /tmp: this measures
# whether clearcap keeps up, and a disk-backed file's write() waits for
# writeback whenever much of the page cache is dirty (right after the build,
# for one), hundreds of milliseconds at a time, whatever clearcap does. That
# case is counted and explained (docs/outputs.md, "longest write"), and
# test_slow_disk_losses_are_counted_and_explained below checks it. The
# capture file's writer stores frames uncompressed when it falls far behind
# (sinks/capture_file/capture_writer.h), so only CPU taken by others loses.
MEMORY_DIR = "/dev/shm"


def bio_loop() -> str:
    path = os.path.join(os.path.dirname(h.clearcap_bin()), "testprogs", "bio_loop")
    if not os.path.exists(path):
        raise AssertionError(f"{path} missing: build the tree (scripts/build.sh)")
    return path


def run_loop(tc, iterations: int, token: str) -> dict:
    proc = h.start_process(tc, [bio_loop(), str(iterations), str(SIZE), token],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = h.finish(proc, timeout=300, what="bio_loop")
    return json.loads(out.decode().splitlines()[-1])


class Streams:
    """Hashes each (conn_id, direction) stream of one pid, in order, as the
    JSON lines go by (655 MB: nothing is kept); any jump in seq is a gap."""

    def __init__(self, pid: int):
        self.pid = pid
        self.next = {}
        self.hash = {}
        self.gaps = []
        self.events = 0

    def add(self, ev: dict) -> None:
        if ev.get("pid") != self.pid or "seq" not in ev:
            return
        self.events += 1
        key = (ev["conn_id"], ev["direction"])
        want = self.next.get(key, 0)
        if ev["seq"] != want:
            self.gaps.append((key, want, ev["seq"]))
        data = h.payload_bytes(ev)
        self.hash.setdefault(key, hashlib.sha256()).update(data)
        self.next[key] = ev["seq"] + len(data)

    def digests(self) -> dict:
        return {k[1]: v.hexdigest() for k, v in self.hash.items()}

    def feed_file(self, path: str) -> None:
        with open(path, "rb") as f:
            for line in f:
                self.add(json.loads(line))


class FullSpeedTest(unittest.TestCase):

    def setUp(self):
        # Gigabytes of dirty pages (the build, earlier tests' captures) are
        # written back by kernel threads that take the CPU the pipeline
        # needs at this rate: the loop is a test of clearcap on a machine
        # that is not busy otherwise, so let writeback finish first.
        os.sync()

    def _check_whole(self, streams: Streams, res: dict) -> None:
        self.assertEqual(streams.gaps, [], "stream gaps")
        self.assertEqual(streams.events, 2 * ITERATIONS, "one event per SSL_write and per SSL_read")
        self.assertEqual(streams.digests(), {"write": res["sha256"], "read": res["sha256"]})

    def _whole(self, args_for, export: bool):
        """Default flags plus args_for(tmp); the events read back from
        --eventaddr or, with export, through `clearcap export` of -w."""
        token = h.new_token()
        with tempfile.TemporaryDirectory(prefix="clearcap-fullspeed-", dir=MEMORY_DIR) as tmp:
            args, out = args_for(tmp)
            with h.Clearcap(["--libssl", h.SYSTEM_LIBSSL, *args]) as cap:
                res = run_loop(self, ITERATIONS, token)
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
            self.assertRegex(cap.stderr, rf"output {re.escape(out)}: 0 write errors, 0 bytes and 0 events")
            jsonl = out
            if export:
                jsonl = os.path.join(tmp, "cap.jsonl")
                ex = h.clearcap_run("export", out, "-o", jsonl, timeout=300)
                self.assertEqual(ex.returncode, 0, ex.stderr.decode()[-3000:])
            streams = Streams(res["pid"])
            streams.feed_file(jsonl)
            self._check_whole(streams, res)

    def test_json_default_flags(self):
        def args(tmp):
            out = os.path.join(tmp, "events.jsonl")
            return ["--eventaddr", out], out
        self._whole(args, export=False)

    def test_capture_file_default_flags(self):
        def args(tmp):
            ccap = os.path.join(tmp, "cap.ccap")
            return ["-w", ccap], ccap
        self._whole(args, export=True)

    def test_slow_disk_losses_are_counted_and_explained(self):
        """A destination that holds each write (here a FIFO read at ~1 MB/s,
        as a disk under writeback holds write()): the queue fills, the
        events it cannot take are counted, every event is either read by
        the reader or counted, and the summary says how long one write
        was held."""
        token = h.new_token()
        iterations = 2000
        with tempfile.TemporaryDirectory(prefix="clearcap-fullspeed-") as tmp:
            fifo = os.path.join(tmp, "slow.fifo")
            os.mkfifo(fifo, 0o600)
            # Opened before clearcap (which refuses a FIFO nobody reads).
            rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            os.set_blocking(rfd, True)
            # A writer of our own until clearcap has exited: a FIFO that no
            # writer ever opened reads as end of file at once.
            wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            lines = []
            stop = threading.Event()

            def slow_reader():
                buf = b""
                with os.fdopen(rfd, "rb", buffering=0) as f:
                    while True:
                        chunk = f.read(64 * 1024)
                        if not chunk:
                            break
                        buf += chunk
                        *whole, buf = buf.split(b"\n")
                        lines.extend(whole)
                        if not stop.is_set():
                            time.sleep(0.05)
                # A record cut at shutdown (no newline) counts as lost, not here.

            reader = threading.Thread(target=slow_reader)
            reader.start()
            try:
                with h.Clearcap(["--libssl", h.SYSTEM_LIBSSL, "--eventaddr", fifo]) as cap:
                    res = run_loop(self, iterations, token)
            finally:
                stop.set()
                os.close(wfd)
                reader.join(timeout=60)
            self.assertFalse(reader.is_alive(), "the FIFO was never closed")
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            m = re.search(rf"output {re.escape(fifo)}: 0 write errors, (\d+) bytes and (\d+) events not delivered"
                          r"; longest write (\d+) ms", cap.stderr)
            self.assertTrue(m, cap.stderr[-3000:])
            not_delivered, longest_ms = int(m.group(2)), int(m.group(3))
            self.assertGreater(not_delivered, 0, "an 8 MiB queue cannot take 90 MB read at 1 MB/s")
            self.assertGreaterEqual(longest_ms, 100, "a 256 KiB write into a pipe read 64 KiB per 50 ms")
            streams = Streams(res["pid"])
            for line in lines:
                streams.add(json.loads(line))
            ring = re.search(r"ring buffer full: (\d+) records", cap.stderr)
            ring_lost = int(ring.group(1)) if ring else 0
            self.assertEqual(streams.events + not_delivered + ring_lost, 2 * iterations, cap.stderr[-3000:])
            self.assertGreaterEqual(cap.losses, not_delivered + ring_lost)

    def test_tiny_ring_losses_are_counted(self):
        token = h.new_token()
        iterations = 4000
        with tempfile.TemporaryDirectory(prefix="clearcap-fullspeed-") as tmp:
            out = os.path.join(tmp, "events.jsonl")
            with h.Clearcap(["--libssl", h.SYSTEM_LIBSSL, "--eventaddr", out, "--mapsize", "16",
                             "--listen", "127.0.0.1:0", "--stats", "1"]) as cap:
                addr = r.api_addr(cap)
                res = run_loop(self, iterations, token)
                r.wait_stderr(cap, r"stats: .*ringbuf_full \d+", "a --stats line naming ringbuf_full")
                status, metrics = r.api(addr, "GET", "/metrics")
                self.assertEqual(status, 200)
            self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
            m = re.search(r"ring buffer full: (\d+) records \((\d+) bytes\)", cap.stderr)
            self.assertTrue(m, cap.stderr[-3000:])
            ring_full, ring_full_bytes = int(m.group(1)), int(m.group(2))
            self.assertGreater(ring_full, 0, "a 64 KiB ring cannot take 16 KiB records at full speed")
            self.assertEqual(cap.losses, ring_full, "the only cause here is the ring: " + cap.stderr[-3000:])
            mm = re.search(r'clearcap_lost_records_total\{cause="ringbuf_full"\} (\d+)', metrics)
            self.assertTrue(mm, metrics)
            self.assertGreater(int(mm.group(1)), 0)
            streams = Streams(res["pid"])
            streams.feed_file(out)
            # Every record is either delivered or counted; the lost ones are
            # the gaps in seq, byte for byte.
            self.assertEqual(streams.events + ring_full, 2 * iterations)
            # (A loss at a stream's very end leaves no gap: <=, not ==.)
            gap_bytes = sum(got - want for _, want, got in streams.gaps)
            self.assertLessEqual(gap_bytes, ring_full_bytes)
            self.assertEqual(ring_full_bytes, ring_full * SIZE)
            # How close the ring came to full is reported for the real ring.
            pm = re.search(r"ring peak fill: (\d+)% of (\d+) KiB", cap.stderr)
            self.assertTrue(pm, cap.stderr[-3000:])
            self.assertEqual(int(pm.group(2)), 64)
            self.assertGreater(int(pm.group(1)), 0)
            gm = re.search(r"\nclearcap_ring_peak_fill_ratio ([0-9.e+-]+)\n", metrics)
            self.assertTrue(gm, metrics)
            self.assertGreater(float(gm.group(1)), 0)
            self.assertLessEqual(float(gm.group(1)), 1)

    def _reader_threads(self, pid: int) -> list:
        """(comm, policy, rt priority) of each cc-reader thread of pid."""
        out = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            if not comm.startswith("cc-reader"):
                continue
            # /proc/PID/task/TID/stat: fields 40 and 41 are rt_priority and
            # policy (after the parenthesised comm, which has no spaces here).
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out.append((comm, int(fields[38]), int(fields[37])))
        return out

    def test_readers_run_realtime_unless_told_not_to(self):
        """Readers are SCHED_FIFO 1 by default (a woken reader must not wait
        for another thread's time slice while its ring fills), and
        --reader-priority 0 keeps normal scheduling; --debug says which."""
        sched_fifo, sched_other = 1, 0
        for args, policy, prio, words in ((["--debug"], sched_fifo, 1, "SCHED_FIFO 1"),
                                          (["--debug", "--reader-priority", "0"], sched_other, 0,
                                           "normal scheduling")):
            with h.Clearcap(["--libssl", h.SYSTEM_LIBSSL, *args]) as cap:
                readers = self._reader_threads(cap.proc.pid)
            self.assertTrue(readers, "no thread named cc-reader*")
            for comm, pol, rtp in readers:
                self.assertEqual((pol, rtp), (policy, prio), f"{comm} with {args}")
            self.assertRegex(cap.stderr, rf"reader 0: \d+ ring\(s\), {words}")


if __name__ == "__main__":
    unittest.main()
