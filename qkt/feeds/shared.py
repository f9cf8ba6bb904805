"""One poller for many listeners: a venue's quotes of a symbol read once per interval, whoever streams
them (SPEC §6.1: one quote poller per (profile, symbol), however many sessions use it).

A listener subscribes and gets every read from then on, in order — the value, or the exception the
read raised (a venue that does not answer is news for each listener, said on its own session's bus).
The poller runs while someone listens: the first subscription starts it, the last one to leave
stops it, and a symbol nobody streams is not polled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedPoll(Generic[T]):
    def __init__(self, read: Callable[[], Awaitable[T]], every_s: float) -> None:
        self.read = read
        self.every_s = every_s
        self._listeners: list[asyncio.Queue[T | Exception]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def subscribe(self) -> asyncio.Queue[T | Exception]:
        queue: asyncio.Queue[T | Exception] = asyncio.Queue()
        self._listeners.append(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[T | Exception]) -> None:
        if queue in self._listeners:
            self._listeners.remove(queue)
        if not self._listeners and self._task is not None:
            self._task.cancel()
            self._task = None

    async def aclose(self) -> None:
        self._listeners.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while self._listeners:
            item: T | Exception
            try:
                item = await self.read()
            except Exception as exc:  # each listener decides what a failed read means
                item = exc
            for queue in list(self._listeners):
                queue.put_nowait(item)
            due = max(due + self.every_s, loop.time() - self.every_s)
            await asyncio.sleep(max(0.0, due - loop.time()))
