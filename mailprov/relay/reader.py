"""Store queries for the HTTP side, run in threads so the SMTP event loop never waits for them.

The API and the inbox share the relay's event loop with SMTP. A search over
100,000 messages, a text search that reads message bodies, a purge or parsing
a 25 MB message would hold that loop for as long as it takes; here they run in
a small pool of threads, each with its own connection to the index (an SQLite
connection must not be used by two threads at once). SQLite releases the GIL
while it works, so the loop keeps accepting mail meanwhile.

Writes made here (delete, purge) take the index's write lock like any other
process would; the SMTP side never blocks on it (see ``storage/writer.py``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mailprov.relay.storage import MessageStore

T = TypeVar("T")
#: Threads answering HTTP requests: one slow search must not hold up the next page view.
THREADS = 2


class StoreReader:
    """Runs functions of a :class:`MessageStore` in a thread pool (one connection per thread)."""

    def __init__(self, root: Path, threads: int = THREADS) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="relay-reader")
        self._local = threading.local()
        self._stores: list[MessageStore] = []
        self._lock = threading.Lock()

    def _store(self) -> MessageStore:
        store: MessageStore | None = getattr(self._local, "store", None)
        if store is None:
            store = MessageStore(self.root).open(create=False)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    async def run(self, func: Callable[[MessageStore], T]) -> T:
        """``func(store)`` in a pool thread; its exceptions are raised here."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: func(self._store()))

    def close(self) -> None:
        """Wait for running queries, then close every connection."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()
