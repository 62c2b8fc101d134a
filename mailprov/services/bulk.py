"""Bulk import of mailboxes from CSV: validate everything, hash in parallel, insert in one go.

All or nothing: every row is checked first and all problems are reported with
their line numbers; only a clean file is imported, in one transaction with its
audit records. Passwords are hashed in a process pool across all cores, whose
workers end with this process. Generated passwords are written only to a new
file created 0600, complete and fsynced before the store commit, and removed if
the commit does not happen (:mod:`mailprov.services.bulk_passwords`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailprov.errors import ImportInvalid, InvalidValue, MailprovError, MissingOption
from mailprov.rules import hashing, passwords
from mailprov.rules.addresses import Address, parse_address
from mailprov.rules.sizes import parse_size
from mailprov.services import bulk_passwords
from mailprov.services.accounts import NewMailbox, insert_mailboxes
from mailprov.services.homes import new_home
from mailprov.store.schema import addresses, domains
from mailprov.system.children import die_with_parent, exit_if_orphaned

if TYPE_CHECKING:
    from mailprov.services.accounts import Actor
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

COLUMNS = ("address", "name", "quota", "password-hash")
MAX_PROBLEMS = 200
_CHUNK = 32

#: The steps of an import, in order, as passed to its ``checkpoint``.
STEPS = (
    "validated",
    "staged",
    "hashing",
    "hashed",
    "published",
    "inserted",
    "committed",
    "finished",
)
Checkpoint = Callable[[str], None]


def _no_checkpoint(_step: str) -> None:
    return None


class ProgressSink(Protocol):
    """Where progress goes (a rich bar on a terminal, or nothing)."""

    def start(self, total: int) -> None: ...
    def advance(self, amount: int = 1) -> None: ...


@dataclass(frozen=True)
class Row:
    """One valid import row."""

    line: int
    address: str
    local: str
    domain: str
    name: str
    quota_bytes: int
    password_hash: str | None


@dataclass(frozen=True)
class ImportResult:
    """What the import did (or would do, in a dry run)."""

    count: int
    generated: int
    addresses: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportInvalid(f"cannot read {path}: {exc.strerror}", hint="check the path") from None
    with handle:
        try:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None:
                raise ImportInvalid(
                    f"{path} is empty", hint="the first row names the columns: " + ",".join(COLUMNS)
                )
            names = [h.strip().lower().replace("_", "-") for h in header]
            unknown = [n for n in names if n not in COLUMNS]
            if unknown or "address" not in names or len(set(names)) != len(names):
                raise ImportInvalid(
                    f"{path} line 1: the header must name the columns "
                    f"{', '.join(COLUMNS)} (address required), got {', '.join(header)[:120]}"
                )
            for record in reader:
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(names):
                    yield (
                        reader.line_num,
                        {"__error__": f"has {len(record)} fields, expected {len(names)}"},
                    )
                    continue
                yield reader.line_num, dict(zip(names, (c.strip() for c in record), strict=True))
        except csv.Error as exc:
            raise ImportInvalid(f"{path} line {reader.line_num}: malformed CSV: {exc}") from None
        except UnicodeDecodeError:
            raise ImportInvalid(f"{path} is not UTF-8 text") from None


def _validate(store: Store, path: Path) -> list[Row]:
    """Every row parsed and checked against the store; ImportInvalid lists all problems."""
    problems: list[str] = []
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for line, record in _read_rows(path):
        if "__error__" in record:
            problems.append(f"line {line}: {record['__error__']}")
            continue
        try:
            address = parse_address(record.get("address", ""))
            if address.is_role:
                raise InvalidValue(f"{address} is a role address, kept for aliases")
            quota = parse_size(record.get("quota") or "0")
            digest = record.get("password-hash") or None
            if digest:
                hashing.split_hash(digest)
        except MailprovError as exc:
            problems.append(f"line {line}: {exc.message}")
            continue
        key = str(address)
        if key in seen:
            problems.append(f"line {line}: {key} is already on line {seen[key]}")
            continue
        seen[key] = line
        rows.append(
            Row(line, key, address.local, address.domain, record.get("name", ""), quota, digest)
        )
    with store.read() as conn:
        known_domains = dict(conn.execute(select(domains.c.name, domains.c.id)).all())
        taken: set[str] = set()
        keys = list(seen)
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            taken.update(
                conn.execute(
                    select(addresses.c.address).where(addresses.c.address.in_(batch))
                ).scalars()
            )
    for row in rows:
        if row.domain not in known_domains:
            problems.append(f"line {row.line}: {row.domain} is not a domain served here")
        elif row.address in taken:
            problems.append(f"line {row.line}: {row.address} is already taken")
    if problems:
        problems.sort(key=lambda p: int(p.split(":")[0].split()[1]))
        raise ImportInvalid(
            f"{path}: {len(problems)} problem(s); nothing was imported",
            problems=problems[:MAX_PROBLEMS],
        )
    return rows


def _hash_chunk(secrets_: Sequence[str], scheme: str, parent_pid: int) -> list[str]:
    out = []
    for password in secrets_:
        exit_if_orphaned(parent_pid)
        out.append(hashing.hash_password(password, scheme))
    return out


def hash_parallel(
    clear: Sequence[str],
    scheme: str,
    *,
    workers: int | None = None,
    progress: ProgressSink | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[str]:
    """Hash every password, spread over ``workers`` processes (default: all cores).

    The workers end when this process does, even by SIGKILL
    (:func:`~mailprov.system.children.die_with_parent`).
    """
    workers = workers or os.cpu_count() or 1
    if progress is not None:
        progress.start(len(clear))
    if workers == 1 or len(clear) <= _CHUNK:
        out = []
        for password in clear:
            out.append(hashing.hash_password(password, scheme))
            if progress is not None:
                progress.advance()
            if checkpoint is not None and len(out) == 1:
                checkpoint("hashing")
        return out
    chunks = [clear[i : i + _CHUNK] for i in range(0, len(clear), _CHUNK)]
    results: list[list[str]] = [[] for _ in chunks]
    parent = os.getpid()
    with ProcessPoolExecutor(
        max_workers=workers, initializer=die_with_parent, initargs=(parent,)
    ) as pool:
        futures = {
            pool.submit(_hash_chunk, chunk, scheme, parent): i for i, chunk in enumerate(chunks)
        }
        for done, future in enumerate(as_completed(futures)):
            index = futures[future]
            results[index] = future.result()
            if progress is not None:
                progress.advance(len(chunks[index]))
            if checkpoint is not None and done == 0:
                checkpoint("hashing")
    return [h for chunk in results for h in chunk]


def import_mailboxes(
    store: Store,
    settings: SiteConfig,
    path: Path,
    *,
    actor: Actor,
    dry_run: bool = False,
    passwords_out: Path | None = None,
    workers: int | None = None,
    progress: ProgressSink | None = None,
    checkpoint: Checkpoint | None = None,
) -> ImportResult:
    """Import mailboxes from a CSV file, all or nothing (see the module docstring).

    ``checkpoint`` is called with the name of each step as it is reached
    (:data:`STEPS`); the crash tests use it to kill the process there.
    """
    step = checkpoint or _no_checkpoint
    removed = bulk_passwords.resolve(store, passwords_out, dry_run=dry_run) if passwords_out else []
    rows = _validate(store, path)
    to_generate = [r for r in rows if r.password_hash is None]
    if to_generate and passwords_out is None and not dry_run:
        raise MissingOption(
            f"{len(to_generate)} row(s) have no password hash, and generated passwords need a file",
            hint="pass --passwords-out FILE (a new file, created 0600)",
        )
    listed = [r.address for r in rows]
    if dry_run:
        return ImportResult(len(rows), len(to_generate), listed, removed)
    step("validated")
    policy = passwords.get_policy(
        settings.passwords.policy, min_length=settings.passwords.min_length or None
    )
    clear = [
        passwords.generate_password(policy, settings.passwords.generated_length)
        for _ in to_generate
    ]
    staged = None
    if to_generate and passwords_out is not None:
        pairs = [(r.address, p) for r, p in zip(to_generate, clear, strict=True)]
        staged = bulk_passwords.stage(passwords_out, pairs)
        step("staged")
    try:
        hashes = iter(
            hash_parallel(
                clear,
                settings.passwords.scheme,
                workers=workers,
                progress=progress,
                checkpoint=step,
            )
        )
        final = {r.address: r.password_hash or next(hashes) for r in rows}
        step("hashed")
        if staged is not None:
            bulk_passwords.publish(staged)
            step("published")
        # Each new mailbox's home, as 'mailbox add' gives it (none on a one-host site).
        home = {d: new_home(store, d, None, settings.cluster) for d in {r.domain for r in rows}}
        _insert(store, rows, final, home, actor=actor, path=path, checkpoint=step)
    except BaseException:
        if staged is not None:
            bulk_passwords.give_up(store, staged, [r.address for r in to_generate])
        raise
    step("committed")
    if staged is not None:
        staged.finish()
        step("finished")
    return ImportResult(len(rows), len(to_generate), listed, removed)


def _insert(
    store: Store,
    rows: list[Row],
    final: dict[str, str],
    home: dict[str, str | None],
    *,
    actor: Actor,
    path: Path,
    checkpoint: Checkpoint,
) -> None:
    new = [
        NewMailbox(
            Address(r.local, r.domain),
            final[r.address],
            " ".join(r.name.split())[:256],
            r.quota_bytes,
            details={"via": "import", "file": path.name, "line": r.line},
            backend=home[r.domain],
        )
        for r in rows
    ]
    try:
        with store.begin() as conn:
            insert_mailboxes(conn, new, actor=actor)
            checkpoint("inserted")
    except IntegrityError:
        raise ImportInvalid(
            "an address in the file was taken while the import ran; nothing was imported",
            hint="run the import again to see which",
        ) from None
