"""Shared helpers for the privileged end-to-end ("bpf") tests.

The tests drive the real clearcap binary (env CLEARCAP_BIN, default
<repo>/build/clearcap) against real programs (nginx, curl, python, node) on
loopback.  Only the Python standard library is used.

Conventions:
  * every test uses its own token (uuid4 hex) in the request path/body and
    asserts on the exact captured content;
  * tests wait on conditions with deadlines (wait_for), never on fixed sleeps;
  * every process a test starts is killed and reaped, even when it fails.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TESTPROGS = REPO / "tests" / "testprogs"
# Debian 12's libssl: nginx, curl and /usr/bin/python3 use it.
SYSTEM_LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"

SKIP_RC = 77

# Deadlines (seconds).
NGINX_START_TIMEOUT = 15.0
NGINX_STOP_TIMEOUT = 10.0
CLEARCAP_READY_TIMEOUT = 60.0
CLEARCAP_STOP_TIMEOUT = 30.0
EVENT_TIMEOUT = 15.0
CLIENT_TIMEOUT = 60.0

RESPONSE_MARKER = "clearcap-response-marker"

if str(TESTPROGS) not in sys.path:
    sys.path.insert(0, str(TESTPROGS))


def log(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Locating things / gates
# --------------------------------------------------------------------------

def clearcap_bin() -> str:
    """Path of the clearcap binary (env CLEARCAP_BIN or <repo>/build/clearcap)."""
    return os.environ.get("CLEARCAP_BIN") or str(REPO / "build" / "clearcap")


def require_binary() -> str:
    """Fail loudly (exit 1) when the clearcap binary is missing: that is a
    build problem, never a reason to skip."""
    path = clearcap_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        print(f"FAIL: clearcap binary not found or not executable: {path} "
              f"(build it, or set CLEARCAP_BIN)", file=sys.stderr, flush=True)
        sys.exit(1)
    return path


def privilege_problem() -> str | None:
    """Why the bpf tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return f"not running as root (euid={os.geteuid()}); loading BPF programs needs root"
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "/sys/kernel/btf/vmlinux is missing: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF)"
    return None


def privilege_gate() -> None:
    """Call at module import, before unittest collects tests.

    Unprivileged: exit 77 (CTest SKIP_RETURN_CODE) with the precise reason,
    unless env CI is set, in which case this is a loud failure (exit 1): CI
    runs as root with BTF, and a CI run that silently skipped these tests
    would be a failure.
    """
    problem = privilege_problem()
    if problem is None:
        require_binary()
        _become_subreaper()
        return
    if os.environ.get("CI"):
        print("=" * 72, file=sys.stderr)
        print(f"FAIL: bpf tests cannot run under CI: {problem}", file=sys.stderr)
        print("=" * 72, file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"SKIP: bpf tests skipped: {problem}", file=sys.stderr, flush=True)
    sys.exit(SKIP_RC)


def _become_subreaper() -> None:
    """Make this process the reaper of orphaned descendants (nginx workers
    whose master was SIGKILLed), so they can be reaped here."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception as e:  # pragma: no cover - best effort
        log(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {e}")


def test_python() -> str:
    """The Python used for client programs: /usr/bin/python3, whose ssl module
    links the system libssl.so.3 dynamically (SSL_write_ex/SSL_read_ex)."""
    env = os.environ.get("CLEARCAP_TEST_PYTHON")
    if env:
        return env
    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    return sys.executable


def node_bin() -> str:
    return os.environ.get("CLEARCAP_TEST_NODE") or shutil.which("node") or "/usr/bin/node"


def run_node_client(tc, port: int, path: str, token: str) -> tuple[int, dict]:
    """tests/testprogs/node_tls_client.js GETs path from 127.0.0.1:port over
    node's own (static) OpenSSL; returns its pid and its JSON result line."""
    node = node_bin()
    if not os.path.exists(node):
        tc.fail(f"node not found ({node}); install nodejs")
    proc = start_process(tc, [node, str(TESTPROGS / "node_tls_client.js"), str(port), path, token],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = finish(proc, what="node client")
    return proc.pid, json.loads(out.decode().splitlines()[-1])


def new_token() -> str:
    """A unique token for one test."""
    return uuid.uuid4().hex


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------

class WaitTimeout(AssertionError):
    pass


def wait_for(predicate, timeout: float = EVENT_TIMEOUT, interval: float = 0.02,
             what: str = "condition", on_timeout=None):
    """Poll predicate() until it returns a truthy value (returned) or the
    deadline passes (AssertionError; on_timeout() may add diagnostics)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = ""
            if on_timeout is not None:
                try:
                    extra = "\n" + str(on_timeout())
                except Exception as e:  # pragma: no cover
                    extra = f"\n(diagnostics failed: {e})"
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """True when pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat[stat.rfind(b")") + 2:][:1]
    return state not in (b"Z", b"X")


def ppid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    return int(stat[stat.rfind(b")") + 2:].split()[1])


def children_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and ppid_of(int(d)) == pid:
            out.append(int(d))
    return sorted(out)


def _reap_pid(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_pids_gone(pids, timeout: float) -> list[int]:
    """Wait until every pid is gone (reaping those that are our children).
    Returns the pids still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        for p in pids:
            _reap_pid(p)
        alive = [p for p in pids if pid_alive(p)]
        if not alive or time.monotonic() >= deadline:
            # reap zombies that became ours (subreaper)
            for p in pids:
                _reap_pid(p)
            return alive
        time.sleep(0.02)


def kill_and_reap(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGKILL a Popen child (and its process group if it leads one) and reap it."""
    if proc.poll() is None:
        try:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL should not fail
        log(f"pid {proc.pid} did not die after SIGKILL")
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()


def start_process(testcase, argv, **kw) -> subprocess.Popen:
    """Popen that is always killed and reaped at the end of the test."""
    kw.setdefault("start_new_session", True)
    proc = subprocess.Popen(argv, **kw)
    testcase.addCleanup(kill_and_reap, proc)
    return proc


# --------------------------------------------------------------------------
# nginx
# --------------------------------------------------------------------------

NGINX_CONF = r"""
daemon off;
master_process on;
worker_processes 1;
user root;
pid {d}/nginx.pid;
lock_file {d}/nginx.lock;
error_log {d}/error.log info;

events {{
    worker_connections 256;
}}

http {{
    log_format cc '$remote_addr $remote_port $pid "$request" $status '
                  '$request_length $body_bytes_sent $ssl_protocol';
    access_log {d}/access.log cc;

    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;

    keepalive_timeout 30s;
    keepalive_requests 1000;
    sendfile off;

    server {{
        listen 127.0.0.1:{port} ssl{listen_extra};
        server_name localhost;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;

        client_max_body_size 4m;

        # /static/NAME: files from {d}/www/static, gzip-compressed for
        # clients that accept it.
        location /static/ {{
            root {d}/www;
            default_type text/plain;
            gzip on;
            gzip_types text/plain;
            gzip_min_length 1;
        }}

        location / {{
            default_type text/plain;
            return 200 "{marker}\n";
        }}

        # PUT /upload/NAME: the DAV module really reads the whole request
        # body (to a temp file) and stores it as {d}/www/upload/NAME, so a
        # test can compare what nginx received byte for byte.
        location /upload/ {{
            root {d}/www;
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw;
            client_body_buffer_size 64k;
        }}
    }}
}}
"""


class Nginx:
    """Own nginx instance on 127.0.0.1:<free port> with TLS 1.2 + 1.3.

    with Nginx() as ngx:
        ngx.port, ngx.master_pid, ngx.worker_pids, ngx.uploaded(name) ...
    """

    def __init__(self, nginx_path: str | None = None, http2: bool = False):
        # http2: the TLS listener also offers h2 (ALPN), so curl and h2
        # clients speak HTTP/2 unless told --http1.1.
        self.http2 = http2
        self.nginx_path = nginx_path or shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir: str | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.worker_pids: list[int] = []
        self._stderr_file = None

    @property
    def master_pid(self) -> int:
        return self.proc.pid

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop()
        except AssertionError:
            if exc_type is None:
                raise
            log("nginx stop problem (masked by an earlier failure)")
        return False

    def _gen_cert(self):
        d = self.dir
        r = subprocess.run(
            ["openssl", "req", "-x509", "-nodes", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"openssl req failed: {r.stderr}")

    def _start(self):
        if not os.path.exists(self.nginx_path):
            raise AssertionError(f"nginx not found at {self.nginx_path}")
        self.dir = tempfile.mkdtemp(prefix="clearcap-nginx-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        for sub in ("tmp", "www/upload", "www/static", "logs"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self._gen_cert()
        last_err = ""
        for _attempt in range(5):
            self.port = free_port()
            with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
                f.write(NGINX_CONF.format(d=self.dir, port=self.port, marker=RESPONSE_MARKER,
                                          listen_extra=" http2" if self.http2 else ""))
            self._stderr_file = open(os.path.join(self.dir, "stderr.log"), "wb")
            self.proc = subprocess.Popen(
                [self.nginx_path, "-p", self.dir + "/", "-c", self.dir + "/nginx.conf",
                 "-e", self.dir + "/error.log"],
                stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                stderr=subprocess.STDOUT, start_new_session=True)
            try:
                self._wait_listening()
            except AssertionError as e:
                last_err = str(e)
                self._kill_all()
                if "Address already in use" in last_err:
                    continue
                raise
            # worker_processes 1: exactly one worker, a child of our master.
            self.worker_pids = wait_for(lambda: children_of(self.proc.pid), 5.0,
                                        what="nginx worker process")
            log(f"nginx master {self.proc.pid} workers {self.worker_pids} "
                f"on 127.0.0.1:{self.port} (dir {self.dir})")
            return
        raise AssertionError(f"nginx failed to start: {last_err}")

    def _diag(self) -> str:
        out = []
        for name in ("stderr.log", "error.log"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out.append(f"--- {name} ---\n" + f.read()[-4000:])
        return "\n".join(out)

    def _wait_listening(self):
        deadline = time.monotonic() + NGINX_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited early with {self.proc.returncode}\n{self._diag()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"nginx did not accept connections on port {self.port} "
                                     f"within {NGINX_START_TIMEOUT}s\n{self._diag()}")
            time.sleep(0.02)

    def current_workers(self) -> list[int]:
        return children_of(self.proc.pid) if self.proc else []

    def _kill_all(self):
        if self.proc is None:
            return
        pids = sorted(set(self.current_workers()) | set(self.worker_pids))
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for p in pids:
            # only pids that were children of our master
            with contextlib.suppress(ProcessLookupError):
                if pid_alive(p):
                    os.kill(p, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        left = wait_pids_gone(pids, 5.0)
        if left:
            log(f"nginx workers still alive after SIGKILL: {left}")
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None

    def stop(self):
        """SIGQUIT (graceful), SIGKILL after a deadline; reap master and workers."""
        try:
            if self.proc is not None:
                self._stop()
        finally:
            if self._stderr_file:
                self._stderr_file.close()
                self._stderr_file = None
            if self.dir and not os.environ.get("CLEARCAP_KEEP_TMP"):
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def _stop(self):
        pids = sorted(set(self.current_workers()) | set(self.worker_pids))
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(timeout=NGINX_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log("nginx did not stop on SIGQUIT; sending SIGKILL")
        self._kill_all()
        left = wait_pids_gone(pids, 5.0)
        self.proc = None
        if left:
            raise AssertionError(f"nginx processes still alive: {left}")

    def access_log(self) -> list[str]:
        p = os.path.join(self.dir, "access.log")
        if not os.path.exists(p):
            return []
        with open(p, errors="replace") as f:
            return f.read().splitlines()

    def access_log_entry(self, needle: str) -> dict | None:
        """Parsed access-log line containing needle (format 'cc' above)."""
        for line in self.access_log():
            if needle in line:
                m = re.match(r'(\S+) (\d+) (\d+) "([^"]*)" (\d+) (\d+) (\d+) (\S+)', line)
                if m:
                    return {"remote_addr": m.group(1), "remote_port": int(m.group(2)),
                            "pid": int(m.group(3)), "request": m.group(4),
                            "status": int(m.group(5)), "request_length": int(m.group(6)),
                            "body_bytes_sent": int(m.group(7)), "ssl_protocol": m.group(8)}
        return None

    def put_static(self, name: str, data: bytes) -> str:
        """Serves `data` at /static/NAME; returns that path."""
        path = os.path.join(self.dir, "www", "static", name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        return "/static/" + name

    def uploaded(self, name: str) -> bytes | None:
        p = os.path.join(self.dir, "www", "upload", name)
        if not os.path.exists(p):
            return None
        with open(p, "rb") as f:
            return f.read()


# --------------------------------------------------------------------------
# clearcap
# --------------------------------------------------------------------------

class _StrictJSONError(ValueError):
    pass


def _reject_constant(name):
    raise _StrictJSONError(f"non-standard JSON constant {name}")


def _no_duplicate_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise _StrictJSONError(f"duplicate key {k!r}")
        d[k] = v
    return d


def parse_json_line(line: bytes) -> dict:
    """Strict parse of one output line: UTF-8, RFC 8259 (no NaN/Infinity, no
    duplicate keys), a JSON object."""
    text = line.decode("utf-8")  # strict
    obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    if not isinstance(obj, dict):
        raise _StrictJSONError(f"line is not a JSON object: {type(obj).__name__}")
    return obj


class Clearcap:
    """Run `clearcap tls --format json ARGS...` for the duration of a with-block.

    with Clearcap(["--pid", "123"]) as cap:   # returns once 'ready:' was printed
        ... drive traffic ...
        cap.wait_for(lambda evs: ..., what="...")
    # on exit: SIGINT, wait (deadline; SIGKILL + failure), parse summary
    cap.events, cap.stderr, cap.returncode, cap.losses, cap.summary_events
    """

    def __init__(self, args=(), module: str = "tls", binary: str | None = None,
                 ready_timeout: float = CLEARCAP_READY_TIMEOUT,
                 stop_timeout: float = CLEARCAP_STOP_TIMEOUT, fmt: str = "json"):
        # fmt: --format; with another format than json, send the events
        # somewhere else than stdout (stdout lines are parsed as JSON).
        self.binary = binary or clearcap_bin()
        # CLEARCAP_EXTRA_ARGS: the same test run again with other global
        # flags (CMake runs the curl and upload tests with --buffer perf).
        extra = os.environ.get("CLEARCAP_EXTRA_ARGS", "").split()
        self.argv = [self.binary, module, "--format", fmt, *extra, *map(str, args)]
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._http: list[dict] = []
        self._bad_lines: list[tuple[bytes, str]] = []
        self._stderr_lines: list[str] = []
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self.returncode: int | None = None
        self.losses: int | None = None
        self.summary_events: int | None = None
        self.killed = False
        self.stopped = False

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self):
        log("starting: " + " ".join(self.argv))
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()
        try:
            deadline = time.monotonic() + self.ready_timeout
            while not self._ready.wait(0.05):
                if self.proc.poll() is not None:
                    for t in self._threads:
                        t.join(2)
                    raise AssertionError(
                        f"clearcap exited with {self.proc.returncode} before 'ready:'\n"
                        f"argv: {self.argv}\nstderr:\n{self.stderr}")
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        f"clearcap did not print 'ready:' within {self.ready_timeout}s\n"
                        f"argv: {self.argv}\nstderr:\n{self.stderr}")
        except BaseException:
            self._kill()
            raise
        log(f"clearcap pid {self.proc.pid} ready")
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop()
        except AssertionError:
            if exc_type is None:
                raise
            log("clearcap stop problem (masked by earlier failure):\n" + self.stderr[-4000:])
        return False

    def _kill(self):
        if self.proc is not None:
            kill_and_reap(self.proc)
            for t in self._threads:
                t.join(5)

    def stop(self):
        """SIGINT, wait for the drain (deadline, then SIGKILL and fail)."""
        if self.stopped or self.proc is None:
            return
        self.stopped = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
        if self.killed:
            self._kill()
        for t in self._threads:
            t.join(10)
        for s in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                s.close()
        self.returncode = self.proc.returncode
        err = self.stderr
        m = re.findall(r"losses:\s*(\d+)", err)
        self.losses = int(m[-1]) if m else None
        m = re.findall(r"events:\s*(\d+)", err)
        self.summary_events = int(m[-1]) if m else None
        log(f"clearcap exited {self.returncode}; {len(self._events)} JSON lines; "
            f"losses={self.losses} events={self.summary_events}")
        if self.killed:
            raise AssertionError(f"clearcap did not exit within {self.stop_timeout}s of SIGINT "
                                 f"(killed)\nstderr:\n{err[-6000:]}")
        if self._bad_lines:
            line, why = self._bad_lines[0]
            raise AssertionError(f"{len(self._bad_lines)} stdout line(s) are not strict JSON "
                                 f"objects; first: {why}: {line[:500]!r}")

    # -- readers -------------------------------------------------------------
    def _read_stdout(self):
        for line in iter(self.proc.stdout.readline, b""):
            raw = line.rstrip(b"\n")
            if not raw:
                with self._lock:
                    self._bad_lines.append((line, "empty line"))
                continue
            try:
                obj = parse_json_line(raw)
            except (ValueError, UnicodeDecodeError) as e:
                with self._lock:
                    self._bad_lines.append((raw, str(e)))
                continue
            with self._lock:
                # The protocol layer's message and exchange events (an
                # "http" object, no payload) are kept apart: tests about
                # the captured bytes see the data events only.
                (self._http if "http" in obj else self._events).append(obj)

    def _read_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            text = line.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self._stderr_lines.append(text)
            if "ready:" in text:
                self._ready.set()

    # -- access ----------------------------------------------------------------
    @property
    def events(self) -> list[dict]:
        with self._lock:
            return list(self._events)

    @property
    def http_events(self) -> list[dict]:
        """Message and exchange events of the protocol layer, in order."""
        with self._lock:
            return list(self._http)

    @property
    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self._stderr_lines)

    def diagnostics(self, n: int = 40) -> str:
        evs = self.events
        lines = [f"clearcap: {len(evs)} events so far; running={self.proc.poll() is None}"]
        for ev in evs[-n:]:
            lines.append("  " + describe(ev))
        lines.append("stderr tail:\n" + self.stderr[-3000:])
        return "\n".join(lines)

    def wait_for(self, predicate, timeout: float = EVENT_TIMEOUT, what: str = "events"):
        """Poll predicate(events) until truthy; returns its value.  Fails early
        if clearcap exits or printed a line that is not JSON."""
        def check():
            if self._bad_lines:
                line, why = self._bad_lines[0]
                raise AssertionError(f"stdout line is not strict JSON ({why}): {line[:500]!r}")
            value = predicate(self.events)
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"clearcap exited ({self.proc.returncode}) while waiting "
                                     f"for {what}\n{self.diagnostics()}")
            return None
        return wait_for(check, timeout, what=what, on_timeout=self.diagnostics)


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------

# source -> (module, direction)
SOURCES = {"SSL_write": ("tls", "write"), "SSL_read": ("tls", "read"),
           "SSL_write_ex": ("tls", "write"), "SSL_read_ex": ("tls", "read"),
           "SSL_write/SSL_write_ex": ("tls", "write"), "SSL_read/SSL_read_ex": ("tls", "read"),
           "gnutls_record_send": ("gnutls", "write"), "gnutls_record_recv": ("gnutls", "read"),
           "gnutls_record_send_range": ("gnutls", "write"), "gnutls_record_recv_seq": ("gnutls", "read"),
           "PR_Write": ("nss", "write"), "PR_Read": ("nss", "read"),
           "PR_Send": ("nss", "write"), "PR_Recv": ("nss", "read")}
# What records from Debian 12's libssl.so.3 say by default: its SSL_read
# and SSL_write start with an instruction the kernel single-steps, so the
# probes sit at the function both they and their _ex variants call
# (--probe-placement auto; `symbol` gives the functions' own names).
SYSTEM_SSL_WRITE = "SSL_write/SSL_write_ex"
SYSTEM_SSL_READ = "SSL_read/SSL_read_ex"
TYPES = {"http1_request", "http1_response", "http2_request", "http2_response", "websocket", "data"}
FAMILIES = {"ipv4", "ipv6", "unknown"}
TIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{9})(Z|\+00:00)$")


def payload_bytes(ev: dict) -> bytes:
    if "payload" in ev:
        return ev["payload"].encode("utf-8")
    if "payload_b64" in ev:
        return base64.b64decode(ev["payload_b64"], validate=True)
    return b""


def describe(ev: dict) -> str:
    p = payload_bytes(ev)
    return (f"pid={ev.get('pid')} tid={ev.get('tid')} comm={ev.get('comm')!r} "
            f"src={ev.get('source')} dir={ev.get('direction')} {ev.get('src')}->{ev.get('dst')} "
            f"conn={ev.get('conn_id')} seq={ev.get('seq')} len={ev.get('len')} "
            f"call_len={ev.get('call_len')} call_off={ev.get('call_off')} "
            f"payload={p[:60]!r}")


def has(ev: dict, needle: str | bytes) -> bool:
    if isinstance(needle, str):
        needle = needle.encode()
    return needle in payload_bytes(ev)


def matching(events, needle=None, **fields) -> list[dict]:
    """Events whose payload contains needle and whose fields equal the given
    values (a callable value is used as a predicate)."""
    out = []
    for ev in events:
        ok = True
        for k, v in fields.items():
            if callable(v):
                if not v(ev.get(k)):
                    ok = False
                    break
            elif ev.get(k) != v:
                ok = False
                break
        if ok and (needle is None or has(ev, needle)):
            out.append(ev)
    return out


def rfc3339_to_ns(s: str) -> int:
    import calendar
    m = TIME_RE.match(s)
    if not m:
        raise ValueError(f"not RFC 3339 UTC with 9 fractional digits: {s!r}")
    y, mo, d, h, mi, se, frac = (int(m.group(i)) for i in range(1, 8))
    return calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0)) * 1_000_000_000 + frac


def check_event_schema(tc, ev: dict, module: str = "tls") -> None:
    """Field presence, types and internal consistency of one JSON event."""
    ctx = describe(ev)
    int_fields = ("ts_ns", "pid", "tid", "uid", "cgroup_id", "fd", "src_port", "dst_port",
                  "seq", "len", "call_len", "call_off")
    str_fields = ("time", "comm", "module", "source", "direction", "family", "src", "dst",
                  "src_ip", "dst_ip", "type")
    for f in int_fields:
        tc.assertIn(f, ev, f"missing {f}: {ctx}")
        tc.assertIsInstance(ev[f], int, f"{f} not an integer: {ctx}")
        tc.assertNotIsInstance(ev[f], bool, f"{f} is a bool: {ctx}")
    for f in str_fields:
        tc.assertIn(f, ev, f"missing {f}: {ctx}")
        tc.assertIsInstance(ev[f], str, f"{f} not a string: {ctx}")
    tc.assertIn("conn_id", ev, ctx)
    tc.assertIsInstance(ev["conn_id"], (int, str), ctx)
    tc.assertIn("truncated", ev, ctx)
    tc.assertIsInstance(ev["truncated"], bool, ctx)
    tc.assertEqual(ev["module"], module, ctx)
    tc.assertIn(ev["source"], SOURCES, ctx)
    tc.assertEqual(ev["module"], SOURCES[ev["source"]][0], ctx)
    tc.assertEqual(ev["direction"], SOURCES[ev["source"]][1], ctx)
    tc.assertIn(ev["family"], FAMILIES, ctx)
    tc.assertIn(ev["type"], TYPES, ctx)
    tc.assertTrue(("payload" in ev) != ("payload_b64" in ev),
                  f"exactly one of payload/payload_b64 expected: {ctx}")
    tc.assertEqual(rfc3339_to_ns(ev["time"]), ev["ts_ns"],
                   f"time {ev['time']} and ts_ns {ev['ts_ns']} disagree: {ctx}")
    tc.assertGreaterEqual(ev["seq"], 0, ctx)
    tc.assertGreaterEqual(ev["call_off"], 0, ctx)
    tc.assertLessEqual(ev["call_off"] + ev["len"], ev["call_len"], ctx)
    if not ev["truncated"]:
        tc.assertEqual(len(payload_bytes(ev)), ev["len"], f"len != payload length: {ctx}")
    if ev["family"] == "ipv4":
        tc.assertEqual(ev["src"], f"{ev['src_ip']}:{ev['src_port']}", ctx)
        tc.assertEqual(ev["dst"], f"{ev['dst_ip']}:{ev['dst_port']}", ctx)


def decrypt_while_capturing(ngx, tmp: str, keyfile: str, tokens, drive) -> tuple[str, set]:
    """tshark records loopback on nginx's port while `drive()` makes one
    HTTPS request per token; then tshark, with only `keyfile`, must decrypt
    every request. Keys are written as each handshake completes, so this
    runs while clearcap is still capturing. Returns (pcap path, URIs)."""
    pcap = os.path.join(tmp, "lo.pcapng")
    with TsharkCapture(pcap, f"tcp port {ngx.port}", tmp) as tsh:
        drive()
        # nginx logs after the response: every request has fully crossed
        # loopback when its line is there.
        wait_for(lambda: all(ngx.access_log_entry(t) for t in tokens), 10, what="nginx access log lines")
        # Every connection ended: at least one FIN or reset each (nginx
        # resets a connection whose client closes with the server's
        # close_notify still in flight; gnutls-cli does). The decryption
        # below is retried while dumpcap writes the rest.
        tsh.wait_packets("tcp.flags.fin == 1 || tcp.flags.reset == 1", len(tokens))

    def decrypted_uris():
        out = tshark_read(pcap, tmp, "http.request", fields=["http.request.uri"],
                          prefs=[f"tls.keylog_file:{keyfile}"])
        uris = set(out.split())
        return uris if all(f"/{t}" in uris for t in tokens) else None
    return pcap, wait_for(decrypted_uris, 15, what="tshark to decrypt every request with the key log")


def check_client_exchange(tc, cap, server_port: int, pid: int, request_line: str, comm: str,
                          module: str, write_sources, read_sources) -> tuple[dict, dict]:
    """One client's request write (exactly once) and response read
    (RESPONSE_MARKER): schema, module, sources, tuple towards the server, one
    connection id, and a write stream that starts with the request at 0."""
    def pair(evs):
        w = matching(evs, request_line, pid=pid, direction="write")
        rd = matching(evs, RESPONSE_MARKER, pid=pid, direction="read")
        return (w, rd) if w and rd else None

    w, rd = cap.wait_for(pair, what=f"{comm} request write and response read")
    tc.assertEqual(len(w), 1, "the request must be captured exactly once:\n" + "\n".join(map(describe, w)))
    for ev in (w[0], rd[0]):
        check_event_schema(tc, ev, module=module)
        tc.assertEqual(ev["comm"], comm, describe(ev))
        tc.assertEqual(ev["family"], "ipv4", describe(ev))
        tc.assertGreaterEqual(ev["fd"], 0, describe(ev))
    tc.assertIn(w[0]["source"], write_sources, describe(w[0]))
    tc.assertIn(rd[0]["source"], read_sources, describe(rd[0]))
    tc.assertEqual(w[0]["dst"], f"127.0.0.1:{server_port}", describe(w[0]))
    tc.assertEqual(rd[0]["src"], f"127.0.0.1:{server_port}", describe(rd[0]))
    # Both directions of one connection: one id, one client port.
    tc.assertEqual(w[0]["conn_id"], rd[0]["conn_id"])
    tc.assertEqual(w[0]["src_port"], rd[0]["dst_port"])
    _, stream = reassemble(cap.events, w[0]["conn_id"], "write", require_start_zero=True)
    tc.assertTrue(stream.startswith(request_line.encode()), stream[:200])
    return w[0], rd[0]


def streams(events) -> dict:
    """{(conn_id, direction): [events sorted by seq]}"""
    out: dict = {}
    for ev in events:
        out.setdefault((ev["conn_id"], ev["direction"]), []).append(ev)
    for k in out:
        out[k].sort(key=lambda e: (e["seq"], e.get("call_off", 0)))
    return out


def reassemble(events, conn_id, direction, require_start_zero: bool = False):
    """Reassemble one conn_id+direction stream ordered by seq.

    Returns (first_seq, bytes).  Raises AssertionError on a gap, an overlap,
    a duplicate, or a truncated chunk."""
    evs = sorted((e for e in events if e["conn_id"] == conn_id and e["direction"] == direction),
                 key=lambda e: e["seq"])
    if not evs:
        raise AssertionError(f"no events for conn_id={conn_id} direction={direction}")
    first = evs[0]["seq"]
    if require_start_zero and first != 0:
        raise AssertionError(f"stream conn_id={conn_id} {direction} starts at seq {first}, not 0")
    buf = bytearray()
    expect = first
    for e in evs:
        if e["truncated"]:
            raise AssertionError(f"truncated chunk in stream: {describe(e)}")
        if e["seq"] != expect:
            kind = "gap" if e["seq"] > expect else "overlap"
            raise AssertionError(f"{kind} in conn_id={conn_id} {direction}: expected seq "
                                 f"{expect}, got {e['seq']} ({describe(e)})")
        p = payload_bytes(e)
        if len(p) != e["len"]:
            raise AssertionError(f"payload length {len(p)} != len {e['len']}: {describe(e)}")
        buf += p
        expect += len(p)
    return first, bytes(buf)


def split_calls(stream_events) -> list[list[dict]]:
    """Group a seq-ordered stream into library calls by call_off (a call
    starts at call_off 0; its chunks follow with call_off advancing by len)."""
    calls: list[list[dict]] = []
    for e in stream_events:
        if e["call_off"] == 0 or not calls:
            calls.append([e])
        else:
            calls[-1].append(e)
    return calls


def find_stream_with(events, needle, **fields):
    """(conn_id, direction) of the first stream (restricted by fields) whose
    reassembled bytes contain needle, else None."""
    if isinstance(needle, str):
        needle = needle.encode()
    sel = matching(events, None, **fields)
    for key, evs in streams(sel).items():
        data = b"".join(payload_bytes(e) for e in evs)
        if needle in data:
            return key
    return None


# --------------------------------------------------------------------------
# Client programs
# --------------------------------------------------------------------------

def py_client_argv(port: int, path: str, *extra) -> list[str]:
    return [test_python(), "-B", str(TESTPROGS / "py_tls_client.py"),
            "--port", str(port), "--path", path, *map(str, extra)]


def read_json_line(proc: subprocess.Popen, timeout: float = CLIENT_TIMEOUT,
                   what: str = "client output") -> dict:
    """Read one JSON line from a client's stdout with a deadline."""
    result: list = []

    def reader():
        result.append(proc.stdout.readline())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        kill_and_reap(proc)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (pid {proc.pid})")
    line = result[0]
    if not line:
        err = b""
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is not None and proc.stderr is not None:
            with contextlib.suppress(Exception):
                err = proc.stderr.read()
        kill_and_reap(proc)
        raise AssertionError(f"{what}: EOF from pid {proc.pid} (rc={proc.poll()}): "
                             f"{err.decode(errors='replace')[-2000:]}")
    return json.loads(line)


def finish(proc: subprocess.Popen, timeout: float = CLIENT_TIMEOUT, what: str = "client"):
    """Wait for a client to exit 0 (deadline, then kill and fail); returns (stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_and_reap(proc)
        raise AssertionError(f"{what} (pid {proc.pid}) did not finish within {timeout}s")
    if proc.returncode != 0:
        raise AssertionError(f"{what} (pid {proc.pid}) exited {proc.returncode}: "
                             f"{(err or b'').decode(errors='replace')[-3000:]}")
    return out, err


# --------------------------------------------------------------------------
# curl against the test nginx
# --------------------------------------------------------------------------

def curl_get(tc, port: int, path: str) -> tuple[int, int]:
    """GET over TLS 1.3 from curl; returns (curl pid, curl's local port)."""
    curl = start_process(tc, ["curl", "-sk", "--http1.1", "-w", "\n%{local_port}\n",
                              f"https://127.0.0.1:{port}{path}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = finish(curl, what="curl")
    body, _, local_port = out.decode().rstrip("\n").rpartition("\n")
    tc.assertEqual(body, RESPONSE_MARKER + "\n")
    return curl.pid, int(local_port)


def curl_put(tc, port: int, name: str, body: bytes, tmpdir: str) -> None:
    """PUT `body` to nginx's /upload/NAME over TLS (stored whole by the DAV module)."""
    src = os.path.join(tmpdir, f"body-{name}")
    with open(src, "wb") as f:
        f.write(body)
    curl = start_process(tc, ["curl", "-sk", "--http1.1", "-T", src, "-o", "/dev/null",
                              "-w", "%{http_code}", f"https://127.0.0.1:{port}/upload/{name}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = finish(curl, what="curl upload")
    tc.assertIn(out.decode(), ("201", "204"), out)


def text_body(size: int, token: str) -> bytes:
    """`size` bytes of text lines that carry `token`."""
    line = (token + " lorem ipsum dolor sit amet\n").encode()
    return (line * (size // len(line) + 1))[:size]


def clearcap_run(*args, timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a clearcap subcommand that ends by itself (export); deadline, output captured."""
    argv = [clearcap_bin(), *map(str, args)]
    log("running: " + " ".join(argv))
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


# --------------------------------------------------------------------------
# tshark (the judge of keys and pcapng files)
# --------------------------------------------------------------------------

TSHARK_TIMEOUT = 60.0


def tshark_env(home: str) -> dict:
    """Environment for tshark with an empty, fresh profile: no key log file
    or other preference can leak in from the machine's configuration."""
    env = dict(os.environ)
    env["HOME"] = home
    env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
    return env


class TsharkCapture:
    """`tshark -i IFACE -w FILE -f FILTER` for the duration of a with-block;
    returns once tshark reports that it is capturing."""

    def __init__(self, path: str, capture_filter: str, home: str, iface: str = "lo"):
        self.path = path
        self.argv = ["tshark", "-i", iface, "-w", path, "-f", capture_filter]
        self.env = tshark_env(home)
        self.proc = None
        self._stderr: list[str] = []
        self._started = threading.Event()

    def __enter__(self):
        log("starting: " + " ".join(self.argv))
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env)

        def read():
            for line in iter(self.proc.stderr.readline, b""):
                text = line.decode(errors="replace").rstrip("\n")
                self._stderr.append(text)
                # "Capturing on" comes before dumpcap has its filter in
                # place; "Capture started" after.
                if "Capture started" in text:
                    self._started.set()
        self._thread = threading.Thread(target=read, daemon=True)
        self._thread.start()
        try:
            wait_for(lambda: self._started.is_set() or self.proc.poll() is not None, 30,
                     what="tshark to start capturing")
            if not self._started.is_set():
                raise AssertionError(f"tshark exited {self.proc.returncode}: {self._stderr}")
        except BaseException:
            kill_and_reap(self.proc)
            raise
        return self

    def wait_packets(self, display_filter: str, count: int, timeout: float = 20.0) -> None:
        """Wait until the file holds `count` packets matching the filter:
        dumpcap writes with a delay, and SIGINT drops what it holds."""
        def enough():
            r = subprocess.run(["tshark", "-r", self.path, "-Y", display_filter], capture_output=True,
                               env=self.env, timeout=TSHARK_TIMEOUT)
            # exit 2 = the file ends mid-packet (still being written)
            return len(r.stdout.splitlines()) >= count
        wait_for(enough, timeout, interval=0.2, what=f"{count} packets matching {display_filter!r} in {self.path}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_and_reap(self.proc)
                raise AssertionError("tshark did not stop within 20s of SIGINT")
        if self.proc:
            self._thread.join(5)
            with contextlib.suppress(Exception):
                self.proc.stderr.close()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False


def tshark_read(path: str, home: str, display_filter: str, fields=(), prefs=()) -> str:
    """Read a capture file with an empty profile; returns stdout."""
    argv = ["tshark", "-r", path, "-Y", display_filter]
    for p in prefs:
        argv += ["-o", p]
    if fields:
        argv += ["-T", "fields"] + [x for f in fields for x in ("-e", f)]
    r = subprocess.run(argv, capture_output=True, env=tshark_env(home), timeout=TSHARK_TIMEOUT)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return r.stdout.decode(errors="replace")
