"""A counting SMTP sink on aiosmtpd, the fallback when Postfix's smtp-sink is not available.

    python -m bench.sink --port P --count-file F

Accepts every message, keeps none, and rewrites F with `mesg=<count>` a few
times a second and on exit, so the benchmark can check that the sink got
every message. Listens on 127.0.0.1 only. It runs in its own process so its
CPU is not shared with the benchmark's client; on a small machine it is
still the likely bottleneck (ECOSYSTEM: about 4-5k msg/s on one core).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session


class CountingHandler:
    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages += 1
        return "250 2.0.0 Ok: queued"


def _write(path: Path, count: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"mesg={count}\n")
    tmp.replace(path)


async def serve(port: int, count_file: Path) -> None:
    handler = CountingHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.bench", ident="bench-sink"),
        host="127.0.0.1",
        port=port,
        backlog=1024,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"sink listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    try:
        while not stop.is_set():
            _write(count_file, handler.messages)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        server.close()
        _write(count_file, handler.messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count-file", type=Path, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port, args.count_file))
    else:
        uvloop.run(serve(args.port, args.count_file))


if __name__ == "__main__":
    main()
