#!/usr/bin/python3
"""HTTPS/1.1 GET over ssl.MemoryBIO (the asyncio way): the TLS library never
sees the socket. Prints one JSON line {"pid", "local_port", "status"}.

usage: py_membio_client.py PORT PATH
"""

import json
import os
import socket
import ssl
import sys


def main() -> int:
    port, path = int(sys.argv[1]), sys.argv[2]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def flush():
        data = outgoing.read()
        if data:
            sock.sendall(data)

    def feed():
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("peer closed")
        incoming.write(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            feed()
    flush()
    tls.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    flush()
    response = b""
    while b"\r\n\r\n" not in response or len(response) < 20:
        try:
            response += tls.read(65536)
        except ssl.SSLWantReadError:
            feed()
        except ssl.SSLZeroReturnError:
            break
    status = int(response.split(b" ", 2)[1])
    print(json.dumps({"pid": os.getpid(), "local_port": sock.getsockname()[1], "status": status}), flush=True)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
