"""Where the socket fd comes from: the SSL object (learned layout), or the
syscall tracepoints (--syscall-fd).

* --syscall-fd needed --libssl <system libssl>: the fd layout is learned at
  start-up and the system-wide syscall tracepoints are not attached. nginx
  (socket BIOs) still gets the right fd and 4-tuple over TLS 1.2 and 1.3
  (its TLS 1.3 first read can be served from the handshake's buffer: the fd
  comes from the object, not from a syscall in the call). curl 7.88+ runs
  TLS over a BIO of its own (not a socket BIO): in this mode it has no
  addresses, and fd -1 - never a wrong fd.
* --syscall-fd always: the tracepoints are attached and curl's connection
  gets its fd from curl's own send/recv inside the call.
* the default (--syscall-fd auto): no tracepoint while every connection has
  a socket BIO (nginx, Python's ssl sockets); the first curl connection
  (fd -1: no socket yet, never a wrong one) attaches them, and the next
  curl and memory-BIO connections get their sockets.
* a memory-BIO client (Python's ssl.MemoryBIO, as asyncio uses) has no
  socket behind the SSL object. With the tracepoints its socket is the one
  the thread writes the ciphertext to right after the call (fd and tuple
  right); with --syscall-fd needed (no tracepoints): fd -1, no tuple -
  never a wrong fd.
* --syscall-fd needed --libssl /usr/bin/node (OpenSSL linked in, not
  loadable with dlopen): the layout is unknown, so the tracepoints are
  attached after all, and node is still captured.
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.privilege_gate()



class FdPathTest(unittest.TestCase):

    def _curl(self, ngx, path, tls_args):
        curl = h.start_process(
            self, ["curl", "-sk", "--http1.1", *tls_args, "-w", "\n%{local_port}\n",
                   f"https://127.0.0.1:{ngx.port}{path}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, _ = h.finish(curl, what="curl")
        body, _, port_line = out.decode().rstrip("\n").rpartition("\n")
        self.assertEqual(body, h.RESPONSE_MARKER + "\n", out)
        return curl.pid, int(port_line)

    def test_learned_fd_no_tracepoints(self):
        self._learned(["--syscall-fd", "needed"], "not attached", curl_has_fd=False)

    def test_always_tracepoints_give_curl_its_socket(self):
        self._learned(["--syscall-fd", "always"], "attached", curl_has_fd=True)

    def test_auto_attaches_the_tracepoints_on_the_first_socketless_connection(self):
        with h.Nginx() as ngx:
            with h.Clearcap(["--debug", "--libssl", h.SYSTEM_LIBSSL]) as cap:
                self.assertIn("syscall tracepoints: not attached (--syscall-fd auto)", cap.stderr)
                # Python's ssl sockets: a socket BIO, nothing asks for them.
                token = h.new_token()
                req = f"GET /{token} HTTP/1.1\r\n"
                py = h.start_process(self, h.py_client_argv(ngx.port, f"/{token}"),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                h.finish(py, what="python client")
                cap.wait_for(lambda evs: h.matching(evs, req, pid=py.pid, direction="write"),
                             what="the python client's write")
                pw = h.matching(cap.events, req, pid=py.pid, direction="write")
                self.assertGreaterEqual(pw[0]["fd"], 0, h.describe(pw[0]))
                self.assertNotIn("syscall tracepoints attached", cap.stderr)
                # curl's own BIO: its first connection has no socket and
                # asks for them.
                first = h.new_token()
                first_req = f"GET /{first} HTTP/1.1\r\n"
                cpid1, _ = self._curl(ngx, f"/{first}", [])
                cap.wait_for(lambda evs: h.matching(evs, first_req, pid=cpid1, direction="write"),
                             what="the first curl's write")
                h.wait_for(lambda: "syscall tracepoints attached" in cap.stderr,
                           what="the tracepoints attached on demand")
                # Now curl and the memory-BIO client get their sockets.
                second = h.new_token()
                second_req = f"GET /{second} HTTP/1.1\r\n"
                cpid2, cport2 = self._curl(ngx, f"/{second}", [])
                cap.wait_for(lambda evs: h.matching(evs, second_req, pid=cpid2, direction="write"),
                             what="the second curl's write")
                mem = self._memory_bio_client(ngx)
                cap.wait_for(lambda evs: h.matching(evs, mem[0], pid=mem[1], direction="write"),
                             what="the memory-BIO client's write")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        w1 = h.matching(cap.events, first_req, pid=cpid1, direction="write")
        self.assertEqual(w1[0]["fd"], -1, h.describe(w1[0]))
        self.assertEqual(w1[0]["family"], "unknown", h.describe(w1[0]))
        w2 = h.matching(cap.events, second_req, pid=cpid2, direction="write")
        self.assertGreaterEqual(w2[0]["fd"], 0, h.describe(w2[0]))
        self.assertEqual((w2[0]["src_port"], w2[0]["dst_port"]), (cport2, ngx.port), h.describe(w2[0]))
        req, pid, local_port = mem
        mw = h.matching(cap.events, req, pid=pid, direction="write")
        self.assertGreaterEqual(mw[0]["fd"], 0, h.describe(mw[0]))
        self.assertEqual((mw[0]["src_port"], mw[0]["dst_port"]), (local_port, ngx.port), h.describe(mw[0]))

    def _learned(self, args, tracepoints, curl_has_fd):
        with h.Nginx() as ngx:
            with h.Clearcap(["--debug", "--libssl", h.SYSTEM_LIBSSL, *args]) as cap:
                self.assertIn(f"fd of {h.SYSTEM_LIBSSL}: read from the SSL object", cap.stderr)
                self.assertIn(f"syscall tracepoints: {tracepoints}", cap.stderr)
                runs = []
                for tls_args in (["--tlsv1.3"], ["--tlsv1.2", "--tls-max", "1.2"]):
                    token = h.new_token()
                    req = f"GET /{token} HTTP/1.1\r\n"
                    cpid, cport = self._curl(ngx, f"/{token}", tls_args)
                    cap.wait_for(lambda evs: h.matching(evs, req, pid=cpid, direction="write")
                                 and h.matching(evs, req, comm="nginx", direction="read"),
                                 what="curl's write and nginx's read of the request")
                    runs.append((req, cpid, cport))
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])
        for req, cpid, cport in runs:
            cw = h.matching(cap.events, req, pid=cpid, direction="write")
            nr = h.matching(cap.events, req, comm="nginx", direction="read")
            self.assertEqual((len(cw), len(nr)), (1, 1), "\n".join(map(h.describe, cw + nr)))
            for ev in (cw[0], nr[0]) if curl_has_fd else (nr[0],):
                h.check_event_schema(self, ev)
                self.assertGreaterEqual(ev["fd"], 0, h.describe(ev))
                self.assertEqual(ev["family"], "ipv4", h.describe(ev))
                # Addresses follow the data: curl -> nginx for both ends.
                self.assertEqual(ev["src_port"], cport, h.describe(ev))
                self.assertEqual(ev["dst_port"], ngx.port, h.describe(ev))
            if not curl_has_fd:
                h.check_event_schema(self, cw[0])
                self.assertEqual(cw[0]["fd"], -1, h.describe(cw[0]))
                self.assertEqual(cw[0]["family"], "unknown", h.describe(cw[0]))

    def test_memory_bio_socket_from_the_ciphertext_write(self):
        # Default: the socket the thread sends the ciphertext to right after
        # the call names the connection. --syscall-fd needed (no
        # tracepoints, the layout is known): no socket, said so.
        for args, socket in ((["--syscall-fd", "always"], True), (["--syscall-fd", "needed"], False)):
            with self.subTest(args=args):
                self._memory_bio(args, socket)

    def _memory_bio_client(self, ngx):
        """Runs the memory-BIO client once: (request line, pid, local port)."""
        token = h.new_token()
        proc = h.start_process(
            self, [h.test_python(), str(h.TESTPROGS / "py_membio_client.py"), str(ngx.port), f"/{token}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, _ = h.finish(proc, what="memory-BIO client")
        res = json.loads(out.decode().splitlines()[-1])
        self.assertEqual(res["status"], 200, res)
        return f"GET /{token} HTTP/1.1\r\n", proc.pid, res["local_port"]

    def _memory_bio(self, args, socket):
        with h.Nginx() as ngx:
            with h.Clearcap(["--libssl", h.SYSTEM_LIBSSL, *args]) as cap:
                req, pid, local_port = self._memory_bio_client(ngx)
                res = {"local_port": local_port}
                cap.wait_for(lambda evs: h.matching(evs, req, pid=pid, direction="write"),
                             what="the memory-BIO client's write")
        w = h.matching(cap.events, req, pid=pid, direction="write")
        self.assertEqual(len(w), 1, "\n".join(map(h.describe, w)))
        h.check_event_schema(self, w[0])
        if socket:
            self.assertGreaterEqual(w[0]["fd"], 0, h.describe(w[0]))
            self.assertEqual(w[0]["family"], "ipv4", h.describe(w[0]))
            self.assertEqual((w[0]["src_port"], w[0]["dst_port"]), (res["local_port"], ngx.port), h.describe(w[0]))
        else:
            self.assertEqual(w[0]["fd"], -1, h.describe(w[0]))
            self.assertEqual(w[0]["family"], "unknown", h.describe(w[0]))
        # nginx's side of the same request has its socket.
        nr = h.matching(cap.events, req, comm="nginx", direction="read")
        self.assertEqual(len(nr), 1)
        self.assertEqual(nr[0]["dst_port"], ngx.port, h.describe(nr[0]))
        self.assertEqual(nr[0]["src_port"], res["local_port"], h.describe(nr[0]))

    def test_unlearnable_library_uses_tracepoints(self):
        node = h.node_bin()
        if not os.path.exists(node):
            self.fail(f"node not found ({node}); install nodejs")
        token = h.new_token()
        req = f"GET /{token} HTTP/1.1\r\n"
        with h.Nginx() as ngx:
            with h.Clearcap(["--debug", "--syscall-fd", "needed", "--libssl", node]) as cap:
                self.assertRegex(cap.stderr, r"fd of \S*node\S*: from syscalls")
                self.assertIn("syscall tracepoints: attached", cap.stderr)
                pid, _ = h.run_node_client(self, ngx.port, f"/{token}", token)
                cap.wait_for(lambda evs: h.matching(evs, req, pid=pid, direction="write"),
                             what="node's write of the request")
        self.assertEqual(cap.returncode, 0, cap.stderr[-3000:])
        self.assertEqual(cap.losses, 0, cap.stderr[-3000:])


if __name__ == "__main__":
    unittest.main()
