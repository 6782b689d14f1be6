"""A fast webhook receiver for `make bench`: answers every POST with 204 at once and records,
per request, when it arrived and when its event occurred, so the bench can report delivery lag
(from the change to the receiver). Minimal HTTP/1.1 with keep-alive on asyncio, so the receiver
is not what limits the measured throughput.

Usage: python3 scripts/bench_receiver.py PORT_FILE LOG_FILE
Writes its port to PORT_FILE once listening; appends "arrival_unix occurred_at" lines to
LOG_FILE (flushed every second and on SIGTERM).
"""

import asyncio
import json
import signal
import sys
import time
from datetime import datetime

RESPONSE = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
records = []


def occurred_at(body):
    try:
        stamp = json.loads(body)["data"]["occurred_at"]
    except (ValueError, KeyError, TypeError):
        return None
    # Python 3.11 parses RFC 3339 with a trailing Z and up to microseconds.
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:].strip())
            body = await reader.readexactly(length) if length else b""
            arrived = time.time()
            writer.write(RESPONSE)
            records.append((arrived, body))
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def flush(log_path):
    while True:
        await asyncio.sleep(1)
        write(log_path)


def write(log_path):
    global records
    batch, records = records, []
    with open(log_path, "a") as log:
        for arrived, body in batch:
            at = occurred_at(body)
            if at is not None:
                log.write(f"{arrived:.6f} {at:.6f}\n")


async def main(port_file, log_path):
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    with open(port_file, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    flusher = asyncio.create_task(flush(log_path))
    async with server:
        await stop.wait()
    flusher.cancel()
    write(log_path)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
