"""A TCP proxy the tests control, to break one network path and only that one.

`TcpProxy` listens on a free local port and forwards every connection to its target. Faults:
- `cut()`: every connection through it is closed and new ones are refused (a node's address
  gone: the client sees a reset and must go elsewhere);
- `blackhole()`: connections stay open but nothing passes either way, and new connections are
  accepted and hang (a network partition: the client learns of it only by its own timeouts);
- `restore()`: forwarding again, for new connections (those cut or black-holed are closed).
It runs in the test's event loop; the processes under test connect to `proxy.port`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode = "open"  # "open" | "cut" | "blackhole"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far

    async def start(self) -> TcpProxy:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        self._server = await asyncio.start_server(self._accept, sock=sock)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def cut(self) -> None:
        self.mode = "cut"
        self._flowing.set()  # held pumps wake up and see the cut
        self._drop_all()

    def blackhole(self) -> None:
        self.mode = "blackhole"
        self._flowing.clear()

    def restore(self) -> None:
        if self.mode == "blackhole":
            # Their bytes were lost midway: those sessions cannot go on, as after a real partition.
            self._drop_all()
        self.mode = "open"
        self._flowing.set()

    @property
    def live(self) -> int:
        """Client connections open through the proxy now."""
        return len(self._writers) // 2

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            # abort, not close: an RST at once, as when a node or a path goes away.
            transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for w in (writer, upstream_writer):
                self._writers.discard(w)
                w.transport.abort()
            self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    return
                # Black-holed: what was read is dropped, as a partitioned network drops it.
                while not self._flowing.is_set():
                    await self._flowing.wait()
                    data = b""
                if self.mode == "cut":
                    return
                if data:
                    writer.write(data)
                    await writer.drain()


@contextlib.asynccontextmanager
async def proxied(target_host: str, target_port: int) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy(target_host, target_port).start()
    try:
        yield proxy
    finally:
        await proxy.close()
