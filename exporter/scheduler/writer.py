"""The scheduler's one way to change the snapshot store: one change at a time, each in a
worker thread and run to completion. Scrapes read the store's body without it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TypeVar

from ..snapshot import QueryKey, QuerySnapshot, SnapshotStore

_T = TypeVar("_T")


class StoreWriter:
    def __init__(self, store: SnapshotStore):
        self.store = store
        # Every change rebuilds (part of) the shared body; one at a time keeps each complete.
        self._lock = asyncio.Lock()

    def get(self, key: QueryKey) -> QuerySnapshot | None:
        return self.store.get(key)

    async def publish(self, snapshot: QuerySnapshot) -> None:
        await self._locked(lambda: self.store.publish(snapshot))

    async def drop(self, key: QueryKey) -> bool:
        return await self._locked(lambda: self.store.drop(key))

    async def drop_if_current(self, snapshot: QuerySnapshot) -> bool:
        """Drop a query's snapshot if it still is this one: not if a newer poll was
        published meanwhile, or the query went."""

        def change() -> bool:
            if self.store.get(snapshot.key) is not snapshot:
                return False
            return self.store.drop(snapshot.key)

        return await self._locked(change)

    async def set_order(self, keys: Iterable[QueryKey]) -> None:
        """Queries appear on /metrics in this order (configuration order)."""
        order = list(keys)
        await self._locked(lambda: self.store.set_order(order))

    async def _locked(self, change: Callable[[], _T]) -> _T:
        """Run a store change in a worker thread, one at a time, to completion.

        A cancelled poll (stop, reload) must not leave its change running in the thread after
        the lock is released: it would race the next change (a removed query's data could
        come back). So the change is shielded and awaited even when the caller is cancelled.
        """
        async with self._lock:
            future = asyncio.ensure_future(asyncio.to_thread(change))
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                await future
                raise
