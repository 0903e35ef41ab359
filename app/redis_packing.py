"""Redis commands packed by hiredis in C, for the asyncio client.

redis-py's asyncio connections pack every command argument in Python (its sync
client already uses hiredis). On the hot paths (a 1,000-recipient send, a
batch of outcomes, the queue table) that packing was the largest single cost
in the profiles; hiredis.pack_command does the same job in C.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        # As redis-py does: a command name may carry its first arguments ("CONFIG GET").
        if isinstance(args[0], str):
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        if any(isinstance(arg, bool) for arg in args):
            raise DataError("a bool is not a Redis argument; convert it to bytes, str or a number")
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from None


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


FAST = {Connection: HiredisConnection, UnixDomainSocketConnection: HiredisUnixConnection}
