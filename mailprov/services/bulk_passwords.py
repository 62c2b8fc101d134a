"""The generated-passwords file of a bulk import: never lost, never blocking a re-run.

The file is complete and fsynced under its name *before* the store commit, and
removed again if the commit does not happen (:mod:`mailprov.system.staged` says
how it is written). A re-run that finds something at ``--passwords-out`` decides
from what is there and from the store (the README's "Bulk import" lists the
states):

- a live import holds the file: refused (``file-exists``), wait for it;
- only the hidden partial copy: the import died before the commit, its
  passwords were never used: removed, the import goes on;
- the file and its partial copy as one file, none of its addresses in the store:
  the import died before its commit: removed, the import goes on;
- the file (with or without the partial copy) and all its addresses in the
  store: the import completed and the passwords are in the file: refused with
  that said exactly (a sample of the passwords is checked against the store);
- anything else: refused as before (secrets are only written to a new file).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from mailprov.errors import FileExists, InvalidValue, PasswordsNotWritten
from mailprov.rules.hashing import verify_password
from mailprov.store.schema import mailboxes
from mailprov.system import staged

if TYPE_CHECKING:
    from mailprov.store import Store

HEADER = ("address", "password")
_BATCH = 500


def render(pairs: Sequence[tuple[str, str]]) -> str:
    """The file's text: a header row, then one ``address,password`` row per mailbox."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(pairs)
    return out.getvalue()


def _parse(text: str | None) -> list[tuple[str, str]] | None:
    """The rows of a file in our format, or None when it is not one."""
    if text is None:
        return None
    if not text:
        return []
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error:
        return None
    if not rows or tuple(rows[0]) != HEADER or any(len(r) != len(HEADER) for r in rows[1:]):
        return None
    return [(r[0], r[1]) for r in rows[1:]]


def _stored_hashes(store: Store, addresses: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    with store.read() as conn:
        for start in range(0, len(addresses), _BATCH):
            batch = list(addresses[start : start + _BATCH])
            query = select(mailboxes.c.address, mailboxes.c.password_hash).where(
                mailboxes.c.address.in_(batch)
            )
            found.update((a, h) for a, h in conn.execute(query).all())
    return found


def _raise_completed(path: Path, listed: list[tuple[str, str]], stored: dict[str, str]) -> None:
    """The file belongs to an import that completed: say exactly that (or that it is stale)."""
    sample = sorted({0, len(listed) // 2, len(listed) - 1})
    for index in sample:
        address, password = listed[index]
        if not verify_password(password, stored[address]):
            raise FileExists(
                f"{path} lists {len(listed)} mailbox(es) that exist, but the password of "
                f"{address} in it no longer matches the store (changed since the import); "
                "nothing was imported",
                hint=f"the file is out of date: remove {path}, or choose another --passwords-out",
            )
    raise FileExists(
        f"{path} holds the generated passwords of an import that completed: all "
        f"{len(listed)} mailbox(es) it lists exist and their passwords match the store "
        f"(checked {len(sample)}); nothing was imported this time",
        hint=f"hand the passwords out from {path} and keep it safe; "
        "for another import choose a new --passwords-out",
    )


def resolve(store: Store, path: Path, *, dry_run: bool) -> list[str]:
    """Clear what a killed import left at ``path``, or refuse with the reason.

    Returns:
        The paths removed (none in a dry run, which only reports refusals).

    Raises:
        FileExists: ``path`` cannot be used; the message says why and what to do.
    """
    left = staged.inspect(path)
    if left is None:
        return []
    if left.busy:
        raise FileExists(
            f"{path} is being written by another mailprov import that is still running",
            hint="wait for it to end, then run this import again if it is still needed",
        )
    removed: list[str] = []
    if left.partial and not left.linked:
        # Its writer died before publishing the file, so before any commit.
        if not dry_run:
            staged.remove_partial(path)
            removed.append(str(staged.partial_path(path)))
        if not left.final:
            return removed
    listed = _parse(left.text)
    if listed is None:
        raise FileExists(f"{path} already exists; secrets are only written to a new file")
    stored = _stored_hashes(store, [a for a, _ in listed])
    if left.linked and not stored:
        # Published but never committed: these passwords were never used.
        if not dry_run:
            staged.remove_leftover(path)
            removed.append(str(path))
        return removed
    if listed and len(stored) == len(listed):
        if left.linked and not dry_run:
            staged.remove_partial(path)
        _raise_completed(path, listed, stored)
    if not listed:
        raise FileExists(
            f"{path} exists but holds no passwords (a killed run of an older mailprov leaves "
            "such a file); nothing was imported",
            hint=f"remove {path} and run the import again",
        )
    raise FileExists(
        f"{path} already exists and lists {len(listed)} address(es), {len(stored)} of them in "
        "the store; secrets are only written to a new file",
        hint="choose another --passwords-out; remove the file only if its passwords are not needed",
    )


def stage(path: Path, pairs: Sequence[tuple[str, str]]) -> staged.StagedFile:
    """Write the passwords under the file's hidden name, fsynced (nothing is committed yet).

    Raises:
        PasswordsNotWritten: the file could not be created or written; nothing is left.
    """
    try:
        return staged.stage_secret(path, render(pairs))
    except InvalidValue as exc:
        raise PasswordsNotWritten(f"{exc.message}; nothing was imported", file=str(path)) from None
    except OSError as exc:
        raise PasswordsNotWritten(
            f"cannot write the generated passwords to {path}: {exc.strerror}; nothing was "
            "imported and no file was left",
            file=str(path),
        ) from None


def publish(file: staged.StagedFile) -> None:
    """Give the staged file its name, durably, before the commit."""
    try:
        file.publish()
    except OSError as exc:
        raise PasswordsNotWritten(
            f"cannot create {file.path}: {exc.strerror}; nothing was imported",
            file=str(file.path),
        ) from None


def give_up(store: Store, file: staged.StagedFile, addresses: Sequence[str]) -> None:
    """After a failure: remove the file unless its passwords may be in the store.

    A failure during the commit itself may come after the commit took effect, so
    the store is asked; when it cannot answer, the file is left as it is, and a
    re-run (which asks again) decides.
    """
    if not file.published:
        file.abandon()
        return
    try:
        committed = bool(_stored_hashes(store, addresses[:1]))
    except Exception:  # the store cannot answer: keep the passwords, a re-run decides
        file.release()
        return
    if committed:
        file.finish()
    else:
        file.abandon()
