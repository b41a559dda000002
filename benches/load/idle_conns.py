#!/usr/bin/env python3
"""Open N idle HTTP/1.1 keep-alive connections to HOST:PORT and hold them.

Each connection sends one `GET / HTTP/1.1`, reads the whole response, and then
stays open and silent. When every connection has been tried, the script writes
"HELD FAILED" to READY_FILE (atomically) and holds the sockets until it gets
SIGTERM/SIGINT or HOLD seconds pass (a hard bound, so it always ends).

  idle_conns.py HOST PORT N READY_FILE [HOLD_SECONDS=120]

Standard library only. The caller must raise `ulimit -n` above N.
"""

import asyncio
import os
import signal
import sys

# Connections being opened at once (IDLE_PARALLEL overrides): how many
# requests a proxy may have in progress together while they are set up.
CONNECT_PARALLEL = int(os.environ.get("IDLE_PARALLEL", "200"))
STEP_TIMEOUT = 10.0


async def _read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    parts = status.split()
    if len(parts) < 2 or parts[1] != b"200":
        raise RuntimeError("status %r" % status)
    length, chunked = None, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            raise RuntimeError("server asked to close")
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)


async def _one(host, port, sem, request):
    async with sem:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STEP_TIMEOUT)
        try:
            writer.write(request)
            await asyncio.wait_for(writer.drain(), STEP_TIMEOUT)
            await asyncio.wait_for(_read_response(reader), STEP_TIMEOUT)
        except BaseException:
            writer.close()
            raise
        return reader, writer


async def main(host, port, n, ready_file, hold):
    request = ("GET / HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: switchyard-idle-bench\r\n\r\n" % (host, port)).encode()
    sem = asyncio.Semaphore(CONNECT_PARALLEL)
    results = await asyncio.gather(*(_one(host, port, sem, request) for _ in range(n)), return_exceptions=True)
    held = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        sys.stderr.write("idle_conns: %d failed, first: %r\n" % (len(failed), failed[0]))
    tmp = ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (len(held), len(failed)))
    os.replace(tmp, ready_file)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), hold)
    except asyncio.TimeoutError:
        pass
    for _, writer in held:
        writer.close()


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.stderr.write(__doc__)
        sys.exit(2)
    asyncio.run(
        main(
            sys.argv[1],
            int(sys.argv[2]),
            int(sys.argv[3]),
            sys.argv[4],
            float(sys.argv[5]) if len(sys.argv) == 6 else 120.0,
        )
    )
