"""Local delivery for ``deliver`` mode: who is local (the account store), and Maildir writing.

Maildir delivery follows the Maildir rules (write into ``tmp/``, then rename
into ``new/``), into ``MAIL_ROOT/DOMAIN/LOCAL/Maildir``, the layout the rendered
Dovecot config uses. When the relay runs as root, folders and files get the
owner of ``MAIL_ROOT`` (the ``vmail`` user), so Dovecot can read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailprov.store import Store

DOMAIN_CACHE_S = 10.0
_counter = itertools.count()


@dataclass
class RecipientResolver:
    """Answers 'is this domain local?' and 'which mailboxes does this address reach?'."""

    store: Store | None
    local_domains: Sequence[str] = ()
    _domains: frozenset[str] = frozenset()
    _domains_at: float = field(default=-1e9)

    def _store_domains(self) -> frozenset[str]:
        from sqlalchemy import select  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        from mailprov.store.schema import domains  # noqa: PLC0415  (lazy: SQLAlchemy)

        if self.store is None:
            return frozenset()
        with self.store.read() as conn:
            return frozenset(
                r[0] for r in conn.execute(select(domains.c.name).where(domains.c.active.is_(True)))
            )

    async def is_local_domain(self, domain: str) -> bool:
        """True for relay.local_domains and the store's active domains (cached briefly)."""
        domain = domain.lower().rstrip(".")
        if domain in self.local_domains:
            return True
        if time.monotonic() - self._domains_at > DOMAIN_CACHE_S:
            self._domains = await asyncio.to_thread(self._store_domains)
            self._domains_at = time.monotonic()
        return domain in self._domains

    def _lookup(self, address: str) -> list[str]:
        from sqlalchemy import select  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        from mailprov.store.schema import (  # noqa: PLC0415  (lazy: SQLAlchemy)
            alias_destinations,
            aliases,
            mailboxes,
        )

        if self.store is None:
            return []
        address = address.strip().lower()
        with self.store.read() as conn:
            active = select(mailboxes.c.address).where(mailboxes.c.active.is_(True))
            if conn.execute(active.where(mailboxes.c.address == address)).first():
                return [address]
            dests = [
                r[0]
                for r in conn.execute(
                    select(alias_destinations.c.destination)
                    .join(aliases, aliases.c.id == alias_destinations.c.alias_id)
                    .where(aliases.c.address == address, aliases.c.active.is_(True))
                )
            ]
            if not dests:
                return []
            return sorted(r[0] for r in conn.execute(active.where(mailboxes.c.address.in_(dests))))

    async def mailboxes_for(self, address: str) -> list[str]:
        """The active local mailboxes ``address`` reaches (itself, or an alias's local targets)."""
        return await asyncio.to_thread(self._lookup, address)


@dataclass
class MaildirDelivery:
    """Writes messages into Maildirs under ``mail_root``."""

    mail_root: Path
    hostname: str = field(default_factory=socket.gethostname)
    fsync: bool = True

    def maildir(self, mailbox: str) -> Path:
        """``MAIL_ROOT/DOMAIN/LOCAL/Maildir`` for a mailbox address."""
        local, _, domain = mailbox.partition("@")
        if not local or not domain or "/" in mailbox or mailbox.startswith("."):
            msg = f"not a deliverable address: {mailbox!r}"
            raise ValueError(msg)
        return self.mail_root / domain / local / "Maildir"

    def _owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        st = self.mail_root.stat()
        return st.st_uid, st.st_gid

    def deliver(
        self, content: bytes, sender: str, targets: Mapping[str, Sequence[str]]
    ) -> list[Path]:
        """Deliver one copy per distinct mailbox; on any failure, remove what was written."""
        owner = self._owner()
        done: list[Path] = []
        seen: set[str] = set()
        try:
            for rcpt, boxes in targets.items():
                for box in boxes:
                    if box in seen:
                        continue
                    seen.add(box)
                    header = f"Return-Path: <{sender}>\r\nDelivered-To: {box}\r\n".encode()
                    done.append(self._write(self.maildir(box), header + content, owner, rcpt))
        except BaseException:
            for path in done:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        return done

    def _write(self, maildir: Path, data: bytes, owner: tuple[int, int] | None, _rcpt: str) -> Path:
        for sub in ("", "tmp", "new", "cur"):
            folder = maildir / sub
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                if owner:
                    for parent in [folder, *folder.relative_to(self.mail_root).parents]:
                        if str(parent) != ".":
                            os.chown(self.mail_root / parent, *owner)
        now = time.time()
        name = (
            f"{int(now)}.M{int((now % 1) * 1e6)}P{os.getpid()}Q{next(_counter)}"
            f".{self.hostname},S={len(data)}"
        )
        tmp = maildir / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
            if owner:
                os.fchown(fd, *owner)
        except BaseException:
            os.close(fd)
            tmp.unlink()
            raise
        os.close(fd)
        final = maildir / "new" / name
        os.rename(tmp, final)
        return final
