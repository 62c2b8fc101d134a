"""Group commit on the event loop: every message that finishes DATA in one loop turn is
stored with one append and one SQLite transaction.

The loop never waits for the index's write lock (another worker process may
hold it): if it is taken, the batch is retried ``LOCK_RETRY_S`` later and grows
meanwhile. WAL checkpoints run in a thread once a second, not inside commits.

Threads were tried first (file writes in a pool, commits in a committer thread):
with the GIL's 5 ms switch interval, each hand-off added milliseconds of
latency and throughput fell below the synchronous path (bench/README.md). The
batch is stored synchronously from a ``call_soon`` callback; each client gets
its 250 only after its message's transaction committed.

After each commit the batch is handed to ``on_stored`` (the relay's
:class:`~mailprov.relay.arrivals.Arrivals`), which wakes whoever waits for such
a message: no one has to poll the index.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailprov.relay.storage.mailbox import MessageStore, Pending, StoredMessage

log = logging.getLogger("mailprov.relay")

LOCK_RETRY_S = 0.0005
CHECKPOINT_S = 1.0


@dataclass(frozen=True)
class Arrival:
    """A message just stored: its index entry, its header block and (if at hand) its bytes."""

    message: StoredMessage
    headers: str
    raw: bytes | None = None


class StoreWriter:
    """The asynchronous front of a MessageStore, for one event loop."""

    def __init__(
        self, store: MessageStore, on_stored: Callable[[list[Arrival]], None] | None = None
    ) -> None:
        self.store = store
        self.on_stored = on_stored
        self._waiting: list[tuple[Pending, asyncio.Future[StoredMessage]]] = []
        self._checkpoints: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the checkpoint task (call on the loop)."""
        self._checkpoints = asyncio.get_running_loop().create_task(self._checkpoint_loop())

    async def _checkpoint_loop(self) -> None:

        while True:
            await asyncio.sleep(CHECKPOINT_S)
            try:
                await asyncio.to_thread(self.store.checkpoint)
            except sqlite3.Error:
                continue

    async def add(
        self,
        raw: bytes,
        *,
        sender: str,
        recipients: Sequence[str],
        auth_user: str | None,
        peer: str,
    ) -> StoredMessage:
        """Store a message; returns once it is indexed. Raises OSError/sqlite3.Error."""
        loop = asyncio.get_running_loop()
        pending = self.store.prepare(
            raw, sender=sender, recipients=recipients, auth_user=auth_user, peer=peer
        )
        done: asyncio.Future[StoredMessage] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((pending, done))
        return await done

    def _flush(self) -> None:
        try:
            locked = self.store.try_begin()
        except Exception:
            locked = True  # store() below raises it again for the batch
        if not locked:
            asyncio.get_running_loop().call_later(LOCK_RETRY_S, self._flush)
            return
        batch, self._waiting = self._waiting, []
        try:
            stored = self.store.store([p for p, _ in batch])
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for (_, done), result in zip(batch, stored, strict=True):
            if not done.done():
                done.set_result(result)
        self._announce(batch, stored)

    def _announce(
        self, batch: Sequence[tuple[Pending, object]], stored: Sequence[StoredMessage]
    ) -> None:
        if self.on_stored is None:
            return
        try:
            self.on_stored(
                [Arrival(m, p.headers, p.raw) for (p, _), m in zip(batch, stored, strict=True)]
            )
        except Exception:  # the messages are stored: a listener's bug must not undo that
            log.exception("announcing stored messages failed")

    def close(self) -> None:
        """Stop checkpointing; store what is still waiting."""
        if self._checkpoints is not None:
            self._checkpoints.cancel()
        if self._waiting:
            batch, self._waiting = self._waiting, []
            stored = self.store.store([p for p, _ in batch])
            for (_, done), result in zip(batch, stored, strict=True):
                if not done.done():
                    done.set_result(result)
