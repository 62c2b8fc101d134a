"""The relay's message store: mailboxes, search, retention, segments, and failure handling."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailprov.errors import InvalidValue, NotFound, RelayStorageUnavailable
from mailprov.relay.storage import MessageStore, Query, Retention

RAW = b"From: a@b.test\r\nSubject: %s\r\nX-Tag: %s\r\nMessage-ID: <%s@t>\r\n\r\nbody\r\n"


def add(
    store: MessageStore,
    n: int,
    to: list[str] | None = None,
    now: float = 1000.0,
    user: str | None = None,
):
    raw = RAW % (f"subject {n}".encode(), f"tag{n}".encode(), str(n).encode())
    return store.add(
        raw, sender="s@b.test", recipients=to or ["r@b.test"], auth_user=user, now=now + n
    )


@pytest.fixture
def store(tmp_path: Path) -> MessageStore:
    """An empty store without limits."""
    return MessageStore(tmp_path / "relay", Retention(0, 0, 0)).open()


def test_recipients_and_auth_user_each_get_a_mailbox(store: MessageStore) -> None:
    """A message shows in each recipient's mailbox and in its AUTH user's, stored once."""
    add(store, 1, ["A@x.test", "b@x.test"], user="Me@x.test")
    assert {(b["mailbox"], b["kind"]) for b in store.mailboxes()} == {
        ("a@x.test", "rcpt"),
        ("b@x.test", "rcpt"),
        ("me@x.test", "user"),
    }
    assert store.count() == 1
    assert store.count("a@x.test") == 1


def test_search_by_subject_sender_time_and_header(store: MessageStore) -> None:
    """Queries combine: subject substring, sender, time window, header value."""
    for n in range(5):
        add(store, n)
    assert [m.subject for m in store.search(Query(subject="SUBJECT 3"))] == ["subject 3"]
    assert len(store.search(Query(sender="s@b", since=1002, until=1003))) == 2
    assert [m.subject for m in store.search(Query(header=("x-tag", "tag4")))] == ["subject 4"]
    assert store.search(Query(header=("Subject", "tag4"))) == []
    oldest = store.search(Query(newest_first=False, limit=1))
    assert oldest[0].subject == "subject 0"


def test_raw_bytes_round_trip(store: MessageStore) -> None:
    """The bytes read back are exactly the bytes stored."""
    stored = add(store, 9)
    assert store.raw(stored.id) == RAW % (b"subject 9", b"tag9", b"9")


def test_retention_drops_the_oldest_first(tmp_path: Path) -> None:
    """Beyond max_messages the oldest go; max_age and max_bytes are enforced too."""
    store = MessageStore(tmp_path / "r", Retention(max_messages=3, max_age_s=0, max_bytes=0)).open()
    for n in range(6):
        add(store, n)
    store.enforce_retention(now=2000)
    assert [m.subject for m in store.search(Query(newest_first=False))] == [
        "subject 3",
        "subject 4",
        "subject 5",
    ]
    store.retention = Retention(0, max_age_s=100, max_bytes=0)
    assert store.enforce_retention(now=1104.5) == 2
    size = store.search(Query())[0].size
    store.retention = Retention(0, 0, max_bytes=size)
    store.enforce_retention(now=1105)
    assert [m.subject for m in store.search(Query())] == ["subject 5"]


def test_purge_removes_messages_and_their_segment(store: MessageStore) -> None:
    """Purging everything empties the index and removes segment files no message is in."""
    for n in range(3):
        add(store, n)
    assert store.purge() == 3
    assert store.count() == 0
    add(store, 4)
    assert len(list((store.root / "messages").glob("*.seg"))) == 1


def test_failed_index_write_leaves_nothing(store: MessageStore) -> None:
    """If indexing fails, the bytes appended for the batch are cut off again."""
    add(store, 1)
    segment = next((store.root / "messages").glob("*.seg"))
    size = segment.stat().st_size
    store.db.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk'); END"
    )
    with pytest.raises(Exception, match="disk"):
        add(store, 2)
    assert segment.stat().st_size == size
    assert store.count() == 1


def test_unknown_message_and_bad_query(store: MessageStore) -> None:
    """An unknown id is NotFound; a zero limit is InvalidValue."""
    with pytest.raises(NotFound):
        store.raw("nope")
    with pytest.raises(NotFound):
        store.delete("nope")
    with pytest.raises(InvalidValue):
        Query(limit=0)


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    """A storage folder that cannot be written is RelayStorageUnavailable naming it."""
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        target = blocker / "relay"
    else:  # pragma: no cover - as a normal user a read-only folder is enough
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    with pytest.raises(RelayStorageUnavailable) as err:
        MessageStore(target).open()
    assert str(target) in err.value.message
    with pytest.raises(RelayStorageUnavailable):
        MessageStore(tmp_path / "missing").open(create=False)
