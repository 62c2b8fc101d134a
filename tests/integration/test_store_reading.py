"""``Store.reading()``: the reads of a block share one transaction (one snapshot), a write
inside it is refused at once instead of waiting on the block's own read lock, and other
threads keep their own transactions. Both store backends."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from mailprov.services import accounts
from mailprov.services.accounts import Actor
from mailprov.store.schema import domains


def test_reads_share_one_transaction_and_writes_are_refused(store: Any) -> None:
    """Inside the block every read() is the same connection, nested blocks too; begin() raises
    RuntimeError; after the block, read() and begin() work as before."""
    with store.reading():
        with store.read() as first, store.read() as second:
            assert first is second
        with store.reading(), store.read() as nested:
            assert nested is first
        with pytest.raises(RuntimeError, match=r"inside Store\.reading"), store.begin():
            pass
    with store.read() as after:
        assert after is not first
    accounts.add_domain(store, "after.example", actor=Actor("tester", int(time.time())))
    assert "after.example" in accounts.domain_names(store)


def test_other_threads_keep_their_own_transactions(store: Any) -> None:
    """A thread outside the block reads and writes as usual while the block is open; on
    SQLite the block's snapshot does not see the other thread's commit."""
    seen: list[Any] = []

    def other() -> None:
        with store.read() as conn:
            seen.append(conn)
        accounts.add_domain(store, "other.example", actor=Actor("tester", int(time.time())))

    with store.reading(), store.read() as mine:
        mine.execute(select(domains.c.name)).all()  # the block's snapshot starts here
        if store.dialect == "sqlite":
            # A writer's commit waits for this read lock: let it run after the block.
            thread = threading.Thread(target=other)
            thread.start()
            time.sleep(0.2)
            assert "other.example" not in [r[0] for r in mine.execute(select(domains.c.name))]
        else:
            thread = threading.Thread(target=other)
            thread.start()
            thread.join(10)
        assert seen and seen[0] is not mine
    thread.join(10)
    assert "other.example" in accounts.domain_names(store)
