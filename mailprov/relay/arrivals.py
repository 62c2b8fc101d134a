"""Messages as they arrive, handed to whoever waits: the API's ``wait``, the inbox's live list.

Issue 14: each pending ``GET /api/v1/wait`` used to re-run its whole search
every 20 ms on the SMTP event loop; two of them cut intake 23-fold at 100,000
stored messages. Now a waiter *subscribes* with its :class:`Query` and is
handed each new message that matches it, tested in memory
(:func:`~mailprov.relay.storage.search.matches`, the same test the SQL makes):
no query runs per arrival, and nothing runs while nothing arrives.

Where the messages come from:

- ``workers = 1``: the relay's :class:`~mailprov.relay.storage.writer.StoreWriter`
  publishes each batch right after its commit (same process, same loop);
- ``workers > 1``: the other processes' messages are only in the index, so
  :meth:`Arrivals.follow` looks at the newest ``seq`` every ``FOLLOW_S`` (one
  primary-key lookup) and, while someone is subscribed, reads the rows above
  the last one seen (a primary-key range, never a rescan). A subscriber may
  then be offered a message stored up to ``FOLLOW_S`` before it subscribed;
  the inbox skips rows it shows already.

A subscriber that does not keep up (an inbox tab in the background) loses the
oldest messages beyond ``QUEUE_MAX`` and is told so (``overflowed``), so a
stalled reader never grows the relay's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mailprov.relay.storage.search import matches
from mailprov.relay.storage.writer import Arrival

if TYPE_CHECKING:
    from mailprov.relay.reader import StoreReader
    from mailprov.relay.storage import MessageStore, Query, StoredMessage

log = logging.getLogger("mailprov.relay")

#: How often the other worker processes' messages are looked for (workers > 1).
FOLLOW_S = 0.05
#: Messages a subscriber may have waiting before the oldest are dropped.
QUEUE_MAX = 1_000


class Subscription:
    """One subscriber's matching messages, in the order they were stored."""

    def __init__(self, hub: Arrivals, query: Query) -> None:
        self.hub = hub
        self.query = query
        self.overflowed = False
        self._queue: asyncio.Queue[StoredMessage | None] = asyncio.Queue()

    def offer(self, arrival: Arrival) -> None:
        """Queue the message if it matches (called on the loop)."""
        raw = arrival.raw

        def read_raw() -> bytes:
            return raw or b""

        if not matches(self.query, arrival.message, arrival.headers, read_raw):
            return
        if self._queue.qsize() >= QUEUE_MAX:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self.overflowed = True
        self._queue.put_nowait(arrival.message)

    def end(self) -> None:
        """The relay stops: wake the subscriber with None."""
        self._queue.put_nowait(None)

    async def next(self, timeout: float | None = None) -> StoredMessage | None:
        """The next matching message; None once the relay stops. TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def pending(self) -> list[StoredMessage]:
        """Every message queued now (without waiting)."""
        out: list[StoredMessage] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._queue.put_nowait(None)  # keep the end mark for next()
                break
            out.append(item)
        return out

    def close(self) -> None:
        """Stop receiving messages."""
        self.hub.unsubscribe(self)


class Arrivals:
    """The relay process's hub: publishers hand stored messages in, subscribers get theirs."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._closed = False

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscriptions)

    def publish(self, arrivals: list[Arrival]) -> None:
        """Offer newly stored messages to every subscription (on the loop; cheap when none)."""
        for subscription in list(self._subscriptions):
            for arrival in arrivals:
                subscription.offer(arrival)

    def subscribe(self, query: Query) -> Subscription:
        """Start receiving messages that match ``query`` (close the subscription when done)."""
        subscription = Subscription(self, query)
        if self._closed:
            subscription.end()
        else:
            self._subscriptions.add(subscription)
        return subscription

    @contextlib.contextmanager
    def subscribed(self, query: Query) -> Iterator[Subscription]:
        """:meth:`subscribe` as a context manager."""
        subscription = self.subscribe(query)
        try:
            yield subscription
        finally:
            subscription.close()

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription."""
        self._subscriptions.discard(subscription)

    def close(self) -> None:
        """The relay stops: end every subscription (an open inbox page, a pending wait)."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.end()
        self._subscriptions.clear()

    async def follow(self, reader: StoreReader) -> None:
        """Publish what any process stores (workers > 1), while anyone is subscribed."""
        seen = -1
        while not self._closed:
            await asyncio.sleep(FOLLOW_S)
            try:
                if seen < 0 or not self._subscriptions:
                    seen = await reader.run(lambda store: store.last_seq())
                    continue
                want_raw = any(s.query.text for s in self._subscriptions)
                fresh = await reader.run(functools.partial(_arrived, after=seen, want_raw=want_raw))
            except Exception as exc:  # a busy or vanished index: try again next time
                log.warning("reading new messages for waiters failed: %s", exc)
                continue
            if fresh:
                seen = fresh[-1].message.seq
                self.publish(fresh)


def _arrived(store: MessageStore, *, after: int, want_raw: bool) -> list[Arrival]:
    found = store.arrived_after(after)
    return [
        Arrival(message, headers, store.raw(message.id) if want_raw else None)
        for message, headers in found
    ]
