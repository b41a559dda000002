#!/usr/bin/env python3
"""Send N HTTP/1.1 keep-alive GETs to HOST:PORT over C connections, in turn
(one request in flight per connection, connections served round-robin), and
exit non-zero unless every answer is 200. A fixed count, not a duration, so
that an instruction count of the server divides by a known number.

  requests.py HOST PORT N [C=1] [PATH=/]

Standard library only.
"""

import socket
import sys


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split()
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked answers are not supported here")
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed in the body")
        rest += chunk
    return status[1], rest[length:]


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    c = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    path = sys.argv[5] if len(sys.argv) > 5 else "/"
    req = ("GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: requests.py\r\n\r\n" % path).encode()
    socks = [socket.create_connection((host, port), timeout=60) for _ in range(c)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bufs = [b""] * c
    bad = 0
    for i in range(n):
        k = i % c
        socks[k].sendall(req)
        status, bufs[k] = read_response(socks[k], bufs[k])
        if status != b"200":
            bad += 1
    for s in socks:
        s.close()
    if bad:
        print("%d of %d answers were not 200" % (bad, n), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
