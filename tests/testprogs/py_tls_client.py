#!/usr/bin/python3
"""Minimal HTTPS/1.1 client for the clearcap bpf tests.

Uses the ssl module of the interpreter it runs under (for /usr/bin/python3 on
Debian 12: the system libssl.so.3, whose SSL_write_ex/SSL_read_ex the ssl
module calls).  Standard library only.

Protocol on stdout (one JSON object per line, flushed):
  {"event": "connected", "pid", "local_port", "peer_port", "tls_version"}
      after the TCP connect and the TLS handshake;
  (with --wait-stdin it then waits for one line on stdin before sending)
  {"event": "done", "status", "response_headers", "body", "sent"}
      after the response was read completely.

The whole request (headers and body) is written with ONE sendall() call.
"""

import argparse
import json
import os
import random
import socket
import ssl
import sys

# 64 printable characters, including the two that JSON must escape.
BODY_ALPHABET = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                 b'"\\')
assert len(BODY_ALPHABET) == 64
_TABLE = bytes(BODY_ALPHABET[i % 64] for i in range(256))


def make_body(size: int, seed: int, token: str) -> bytes:
    """Deterministic pseudo-random printable body of exactly `size` bytes that
    starts and ends with the token."""
    head = f"{token}:".encode()
    tail = f":{token}".encode()
    if size < len(head) + len(tail):
        raise ValueError("body too small for the token")
    n = size - len(head) - len(tail)
    middle = random.Random(seed).randbytes(n).translate(_TABLE)
    return head + middle + tail


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_response(tls):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = tls.recv(65536)
        if not chunk:
            raise SystemExit(f"connection closed before response headers: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = tls.recv(65536)
        if not chunk:
            raise SystemExit("connection closed in the response body")
        rest += chunk
    return status, headers, rest[:length]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--method", default=None, help="default GET, or PUT with a body")
    ap.add_argument("--token", default="")
    ap.add_argument("--body-size", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tls", choices=["1.2", "1.3", "any"], default="any")
    ap.add_argument("--wait-stdin", action="store_true",
                    help="after the handshake, wait for a line on stdin before sending")
    ap.add_argument("--repeat", type=int, default=1,
                    help="this many requests, each on a new connection; '{i}' in --path and "
                         "--token is replaced by the request's index")
    a = ap.parse_args()
    for i in range(a.repeat):
        one_request(a, i)


def one_request(a, i):
    path = a.path.replace("{i}", str(i))
    token = a.token.replace("{i}", str(i))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if a.tls == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif a.tls == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3

    raw = socket.create_connection((a.host, a.port), timeout=60)
    tls = ctx.wrap_socket(raw, server_hostname=a.host)
    emit({"event": "connected", "pid": os.getpid(), "local_port": tls.getsockname()[1],
          "peer_port": tls.getpeername()[1], "tls_version": tls.version()})

    if a.wait_stdin:
        if not sys.stdin.readline():
            raise SystemExit("stdin closed before the go line")

    body = make_body(a.body_size, a.seed, token) if a.body_size else b""
    method = a.method or ("PUT" if body else "GET")
    req = (f"{method} {path} HTTP/1.1\r\n"
           f"Host: {a.host}:{a.port}\r\n"
           f"User-Agent: clearcap-py-client\r\n"
           f"X-Clearcap-Token: {token}\r\n"
           f"Content-Length: {len(body)}\r\n"
           f"Connection: close\r\n\r\n").encode() + body
    tls.sendall(req)  # one call: SSL_write_ex with the whole request
    status, headers, resp_body = read_response(tls)
    emit({"event": "done", "status": status, "response_headers": headers,
          "body": resp_body.decode("utf-8", "replace"), "sent": len(req)})
    tls.close()


if __name__ == "__main__":
    main()
