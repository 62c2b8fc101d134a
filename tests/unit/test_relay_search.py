"""The relay store's searches (issue 14): plans, pages and totals, the Python twin of the SQL test,
the retention bound, and the upgrade of an older storage folder."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailprov.relay.storage import MessageStore, Query, Retention
from mailprov.relay.storage.schema import TABLES
from mailprov.relay.storage.search import COUNT_MAX, SMALL_MAILBOX, body_text, matches, plan


def raw(subject: str, body: str = "body", extra: str = "") -> bytes:
    return f"From: a@b.test\r\nSubject: {subject}\r\n{extra}\r\n{body}\r\n".encode()


@pytest.fixture
def store(tmp_path: Path) -> MessageStore:
    """An empty store without limits."""
    return MessageStore(tmp_path / "relay", Retention(0, 0, 0)).open()


def explain(store: MessageStore, query: Query, *, small: bool = False) -> list[str]:
    found = plan(query, small_mailbox=small, limit=query.limit)
    return [row[3] for row in store.db.execute("EXPLAIN QUERY PLAN " + found.sql, found.args)]


@pytest.mark.parametrize(
    ("query", "small", "via"),
    [
        (Query(), False, "SEARCH m USING INTEGER PRIMARY KEY"),
        (Query(mailbox="a@x.test"), False, "SEARCH b USING PRIMARY KEY (mailbox=? AND seq>?)"),
        (Query(mailbox="a@x.test", newest_first=False), False, "SEARCH b USING PRIMARY KEY"),
        (Query(mailbox="a@x.test", before_seq=9), False, "SEARCH b USING PRIMARY KEY"),
        (Query(mailbox="a@x.test", subject="welcome"), False, "VIRTUAL TABLE"),
        (Query(mailbox="a@x.test", subject="welcome"), True, "SEARCH b USING PRIMARY KEY"),
        (Query(subject="welcome", sender="app@"), False, "VIRTUAL TABLE"),
        (Query(subject="we"), False, "SEARCH m USING INTEGER PRIMARY KEY"),
    ],
)
def test_no_plan_sorts_in_a_temporary_btree(
    store: MessageStore, query: Query, small: bool, via: str
) -> None:
    """Every listing walks an index in seq order (EXPLAIN QUERY PLAN has no TEMP B-TREE)."""
    steps = explain(store, query, small=small)
    assert not [s for s in steps if "TEMP B-TREE" in s], steps
    assert any(via in s for s in steps), steps


def test_pages_walk_a_mailbox_without_gaps_or_repeats(store: MessageStore) -> None:
    """next_before pages through every message once, newest first, each page with the total."""
    for n in range(23):
        store.add(raw(f"m{n}"), sender="s@x.test", recipients=["box@x.test"], now=1000 + n)
    store.add(raw("other"), sender="s@x.test", recipients=["else@x.test"])
    seen: list[str] = []
    before = None
    while True:
        page = store.page(Query(mailbox="box@x.test", limit=10, before_seq=before))
        assert (page.total, page.total_exact) == (23, True)
        seen += [m.subject for m in page.messages]
        if page.next_before is None:
            break
        before = page.next_before
    assert [f"m{n}" for n in reversed(range(23))] == seen


def test_a_page_that_ends_exactly_has_no_next(store: MessageStore) -> None:
    """A page holding the last messages says so, even when it is full."""
    for n in range(10):
        store.add(raw(f"m{n}"), sender="s@x.test", recipients=["box@x.test"])
    page = store.page(Query(mailbox="box@x.test", limit=10))
    assert (len(page.messages), page.next_before) == (10, None)


def test_search_totals_stop_counting_at_the_cap(store: MessageStore) -> None:
    """A filtered search counts up to COUNT_MAX and then says the total is a lower bound."""
    pending = [
        store.prepare(raw(f"Welcome {n}"), sender="s@x.test", recipients=["w@x.test"])
        for n in range(COUNT_MAX + 5)
    ]
    store.store(pending)
    page = store.page(Query(subject="welcome", limit=5))
    assert (page.total, page.total_exact, len(page.messages)) == (COUNT_MAX, False, 5)
    page = store.page(Query(subject="welcome 17", limit=5))
    assert ["Welcome 179", "Welcome 178", "Welcome 177"] == [m.subject for m in page.messages][:3]
    assert (page.total, page.total_exact) == (11, True)
    exact = store.page(Query(subject="welcome 1003", limit=50))
    assert (exact.total, exact.total_exact) == (1, True)


def test_small_and_large_mailboxes_give_the_same_answer(store: MessageStore) -> None:
    """Whether the mailbox or the text index drives the search, the messages found are the same."""
    batch = [
        store.prepare(
            raw("Reset your password" if n % 7 == 0 else f"Newsletter {n}"),
            sender="s@x.test",
            recipients=["big@x.test" if n % 2 else "small@x.test"],
        )
        for n in range(SMALL_MAILBOX * 2 + 50)
    ]
    store.store(batch)
    for box in ("big@x.test", "small@x.test"):
        query = Query(mailbox=box, subject="password", limit=10_000)
        every = store.search(Query(mailbox=box, limit=10_000))
        expected = [m.id for m in every if "password" in m.subject.lower()]
        assert expected == [m.id for m in store.search(query)]
    assert store.page(Query(mailbox="big@x.test", subject="password", limit=5)).extra == {
        "via": "text-index"
    }


def test_substring_search_takes_like_wildcards_literally(store: MessageStore) -> None:
    """'%' and '_' in a term match only themselves (the index narrows, the exact test decides)."""
    for subject in ("50% off", "500 off", "a_b c", "axb c"):
        store.add(raw(subject), sender="s@x.test", recipients=["r@x.test"])
    assert [m.subject for m in store.search(Query(subject="0% o"))] == ["50% off"]
    assert [m.subject for m in store.search(Query(subject="a_b"))] == ["a_b c"]


messages = st.lists(
    st.tuples(
        st.sampled_from(["Welcome ann", "RESET code", "weekly news", "Ünïcode Ärger", "x"]),
        st.sampled_from(["app@x.test", "Noreply@Y.test", "bot@x.test"]),
        st.lists(st.sampled_from(["a@x.test", "B@x.test", "c@y.test"]), min_size=1, max_size=2),
        st.sampled_from([None, "ann@x.test", "a@x.test"]),
        st.sampled_from(["X-Tag: one", "X-Tag: two", ""]),
    ),
    max_size=12,
)
queries = st.builds(
    Query,
    mailbox=st.sampled_from([None, "a@x.test", "b@x.test", "ANN@x.test"]),
    sender=st.sampled_from([None, "app", "NOREPLY@y", "@x.t", "zzz"]),
    subject=st.sampled_from([None, "we", "welcome", "CODE", "ärger", "Ärger", "x"]),
    user=st.sampled_from([None, "ann@x.test", "A@X.TEST"]),
    header=st.sampled_from([None, ("X-Tag", "one"), ("x-tag", "TW")]),
    after_seq=st.integers(0, 6),
    before_seq=st.sampled_from([None, 4, 9]),
    newest_first=st.booleans(),
    limit=st.integers(1, 20),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=messages, query=queries)
def test_the_python_test_agrees_with_the_sql(tmp_path_factory, items, query) -> None:
    """matches() (used for arriving messages) selects exactly what the SQL search finds."""
    store = MessageStore(tmp_path_factory.mktemp("s"), Retention(0, 0, 0)).open()
    try:
        added = []
        for subject, sender, rcpts, user, header in items:
            data = raw(subject, extra=header + "\r\n" if header else "")
            stored = store.add(data, sender=sender, recipients=rcpts, auth_user=user)
            added.append((stored, data.split(b"\r\n\r\n")[0].decode()))
        ordered = added if not query.newest_first else list(reversed(added))
        expected = [m.id for m, headers in ordered if matches(query, m, headers)][: query.limit]
        assert expected == [m.id for m in store.search(query)]
    finally:
        store.close()


def test_text_search_reads_decoded_bodies(store: MessageStore) -> None:
    """text= finds words in plain, quoted-printable and base64 bodies, not in headers."""
    qp = (
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    )
    b64 = "Content-Transfer-Encoding: base64\r\n"
    encoded = base64.b64encode("Ihr Bestätigungscode lautet 4711".encode()).decode()
    store.add(raw("plain", "your code is 1234"), sender="s@x.test", recipients=["t@x.test"])
    store.add(raw("qp", "caf=C3=A9 code=3D99", qp), sender="s@x.test", recipients=["t@x.test"])
    store.add(raw("b64", encoded, b64), sender="s@x.test", recipients=["t@x.test"])
    assert [m.subject for m in store.search(Query(text="code is 1234"))] == ["plain"]
    assert [m.subject for m in store.search(Query(text="CAFÉ code=99"))] == ["qp"]
    assert [m.subject for m in store.search(Query(text="bestätigungscode"))] == ["b64"]
    assert store.search(Query(text="Subject")) == []
    assert "4711" in body_text(raw("b64", encoded, b64))


def test_count_and_bytes_never_exceed_the_bound(tmp_path: Path) -> None:
    """With max_messages/max_bytes, every commit leaves the store within them (no timer)."""
    store = MessageStore(tmp_path / "r", Retention(max_messages=5, max_age_s=0, max_bytes=0)).open()
    for n in range(12):
        store.add(raw(f"m{n}"), sender="s@x.test", recipients=["r@x.test"])
        assert store.count() == min(n + 1, 5)
        assert store.count("r@x.test") == store.count()
    assert [m.subject for m in store.search(Query())] == ["m11", "m10", "m9", "m8", "m7"]
    size = len(raw("m00"))
    store.retention = Retention(max_messages=0, max_age_s=0, max_bytes=3 * size)
    for n in range(20, 26):
        store.store([store.prepare(raw(f"m{n}"), sender="s@x.test", recipients=["r@x.test"])])
        assert store.totals()[1] <= 3 * size
    assert [m.subject for m in store.search(Query())] == ["m25", "m24", "m23"]
    assert store.totals() == (3, 3 * size)


def test_the_bound_removes_segments_it_empties(tmp_path: Path) -> None:
    """Segment files whose messages all went to retention are removed at once."""
    store = MessageStore(tmp_path / "r", Retention(max_messages=2, max_age_s=0, max_bytes=0)).open()
    big = "x" * (6 << 20)  # three fill a 16 MiB segment
    for n in range(7):
        store.add(raw(f"m{n}", big), sender="s@x.test", recipients=["r@x.test"])
    segments = list((store.root / "messages").glob("*.seg"))  # m0-m2 | m3-m5 | m6
    assert len(segments) == 2  # the first one went with m2
    assert sum(p.stat().st_size for p in segments) < 30 << 20
    assert [m.subject for m in store.search(Query())] == ["m6", "m5"]


def test_an_older_store_is_upgraded_on_open(tmp_path: Path) -> None:
    """A storage folder from before the totals and the text index gets both, with its messages."""
    root = tmp_path / "old"
    (root / "messages").mkdir(parents=True)
    (root / "messages" / "1-1-1.seg").write_bytes(b"")
    db = sqlite3.connect(root / "index.sqlite")
    db.executescript(TABLES)
    for seq, (subject, box) in enumerate([("Hello", "a@x.test"), ("Welcome", "b@x.test")], 1):
        db.execute(
            "INSERT INTO messages (seq, id, received_at, sender, recipients, auth_user, peer,"
            " subject, message_id, size, segment, offset, headers) VALUES"
            " (?, ?, 1.0, 's@x.test', ?, NULL, '', ?, '', 10, '1-1-1.seg', 0, '')",
            (seq, f"id{seq}", json.dumps([box]), subject),
        )
        db.execute("INSERT INTO mailbox_messages VALUES (?, ?, 'rcpt')", (box, seq))
    db.commit()
    db.close()
    store = MessageStore(root, Retention(0, 0, 0)).open()
    assert store.totals() == (2, 20)
    assert store.mailboxes() == [
        {"mailbox": "a@x.test", "kind": "rcpt", "messages": 1},
        {"mailbox": "b@x.test", "kind": "rcpt", "messages": 1},
    ]
    assert [m.id for m in store.search(Query(subject="welcome"))] == ["id2"]
    assert store.page(Query(subject="welcome")).extra == {"via": "text-index"}
    MessageStore(root).open()  # a second open changes nothing
    assert store.totals() == (2, 20)


def test_purge_all_keeps_counting_and_searching_right(store: MessageStore) -> None:
    """After emptying everything, totals restart at zero, seqs go on, searches find new mail only."""
    first = store.add(raw("Welcome one"), sender="s@x.test", recipients=["r@x.test"])
    other = MessageStore(store.root).open(create=False)
    assert other.purge() == 1
    second = store.add(raw("Welcome two"), sender="s@x.test", recipients=["r@x.test"])
    assert second.seq > first.seq
    assert store.totals() == (1, len(raw("Welcome two")))
    assert store.mailboxes() == [{"mailbox": "r@x.test", "kind": "rcpt", "messages": 1}]
    assert [m.subject for m in store.search(Query(subject="welcome"))] == ["Welcome two"]
    other.close()
