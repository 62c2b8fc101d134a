"""DKIM keys and their rotation: ``mailprov dkim keygen|list|rotate|activate|retire``.

Keys live in files, not in the account store: ``[dkim] key_dir/DOMAIN/`` holds
one ``SELECTOR.private`` (PKCS#8 PEM, 0600, owned by the signer's user) per key
and ``selectors.json``, which lists each selector with its algorithm, status and
times. Statuses:

- ``next``: made, to be published in DNS; not signing yet.
- ``active``: published. Per algorithm, the most recently activated active key
  signs; an older active key stays published (so mail in transit still
  verifies) until ``retire`` accepts it, ``retire_after_days`` after it was
  replaced.
- ``retired``: out of DNS and out of the signer; its private key file is deleted.

Every change is written atomically, under a lock, and recorded in the audit log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.errors import (
    AlreadyExists,
    DkimNotPublished,
    DkimStateInvalid,
    InUse,
    InvalidValue,
    NotFound,
)
from mailprov.model import DkimStatus, iso
from mailprov.rules import dkim
from mailprov.services.accounts import domain_names, get_domain
from mailprov.store import audit
from mailprov.system.files import atomic_write
from mailprov.system.secrets import DKIM_KEY, read_secret, user_ids, write_secret

if TYPE_CHECKING:
    from mailprov.rules.dnscheck import CheckResult
    from mailprov.services.accounts import Actor
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

STATE_FILE = "selectors.json"
STATE_VERSION = 1
DAY = 86_400


@dataclass(frozen=True)
class DkimKey:
    """One selector of a domain, as the state file lists it."""

    domain: str
    selector: str
    algorithm: str
    status: DkimStatus
    created_at: int
    key_file: Path
    activated_at: int | None = None
    superseded_at: int | None = None
    retired_at: int | None = None
    signing: bool = False
    record: str | None = None

    @property
    def dns_name(self) -> str:
        """Where the record goes (absolute)."""
        return f"{self.selector}._domainkey.{self.domain}."

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (never the private key)."""
        return {
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": self.algorithm,
            "status": self.status,
            "signing": self.signing,
            "created_at": iso(self.created_at),
            "activated_at": iso(self.activated_at),
            "superseded_at": iso(self.superseded_at),
            "retired_at": iso(self.retired_at),
            "key_file": str(self.key_file),
            "dns_name": self.dns_name,
            "record": self.record,
        }


def domain_dir(settings: SiteConfig, domain: str) -> Path:
    """The key folder of one domain (A-label)."""
    return settings.resolve_path(settings.dkim.key_dir) / domain


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the domain folder's lock: two rotations at once must not both write."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o755)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _status(value: object, path: Path) -> DkimStatus:
    try:
        return DkimStatus(str(value))
    except ValueError:
        raise DkimStateInvalid(f"DKIM state file {path} has an unknown status") from None


def _load(folder: Path, domain: str) -> list[DkimKey]:
    path = folder / STATE_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DkimStateInvalid(f"DKIM state file {path} cannot be read: {exc}") from None
    try:
        keys = [
            DkimKey(
                domain=domain,
                selector=dkim.check_selector(item["selector"]),
                algorithm=dkim.check_algorithm(item["algorithm"]),
                status=_status(item["status"], path),
                created_at=int(item["created_at"]),
                key_file=folder / f"{item['selector']}.private",
                activated_at=item.get("activated_at"),
                superseded_at=item.get("superseded_at"),
                retired_at=item.get("retired_at"),
            )
            for item in data["selectors"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise DkimStateInvalid(f"DKIM state file {path} is damaged ({exc!r})") from None
    return _mark_signers(keys)


def _mark_signers(keys: list[DkimKey]) -> list[DkimKey]:
    """Set ``signing`` on the newest active key of each algorithm."""
    newest: dict[str, DkimKey] = {}
    for key in keys:
        if key.status == DkimStatus.ACTIVE:
            best = newest.get(key.algorithm)
            # Ties (same second) go to the key listed later: the one activated last.
            if best is None or (key.activated_at or 0) >= (best.activated_at or 0):
                newest[key.algorithm] = key
    chosen = {id(k) for k in newest.values()}
    return [replace(k, signing=id(k) in chosen) for k in keys]


def _save(folder: Path, keys: Sequence[DkimKey]) -> None:
    items = [
        {
            "selector": k.selector,
            "algorithm": k.algorithm,
            "status": k.status,
            "created_at": k.created_at,
            "activated_at": k.activated_at,
            "superseded_at": k.superseded_at,
            "retired_at": k.retired_at,
        }
        for k in keys
    ]
    text = json.dumps({"version": STATE_VERSION, "selectors": items}, indent=2) + "\n"
    atomic_write(folder / STATE_FILE, text, mode=0o644)


def with_record(key: DkimKey) -> DkimKey:
    """The key with its DNS TXT value, read from the private key file (which must be 0600)."""
    if key.status == DkimStatus.RETIRED:
        return key
    pem = read_secret(key.key_file, DKIM_KEY)
    return replace(
        key, record=dkim.record_from_pem(pem, path=str(key.key_file), algorithm=key.algorithm)
    )


def list_keys(
    store: Store, settings: SiteConfig, domain: str, *, records: bool = True
) -> list[DkimKey]:
    """A domain's selectors, oldest first, with their records unless ``records`` is False."""
    name = get_domain(store, domain).name
    keys = _load(domain_dir(settings, name), name)
    return [with_record(k) for k in keys] if records else keys


def keys_of(settings: SiteConfig, domain: str) -> list[DkimKey]:
    """A domain's selectors from its key folder (``domain`` an A-label; no store lookup)."""
    return _load(domain_dir(settings, domain), domain)


def _audit(store: Store, actor: Actor, action: str, domain: str, key: DkimKey) -> None:
    with store.begin() as conn:
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action=action,
            target=domain,
            details={"selector": key.selector, "algorithm": key.algorithm},
        )


def _new_key(
    settings: SiteConfig,
    folder: Path,
    keys: list[DkimKey],
    domain: str,
    *,
    selector: str | None,
    algorithm: str,
    now: int,
    dry_run: bool = False,
) -> DkimKey:
    chosen = _choose_selector(settings, folder, keys, domain, selector, algorithm, now)
    key_file = folder / f"{chosen}.private"
    if dry_run:
        return DkimKey(domain, chosen, algorithm, DkimStatus.NEXT, now, key_file)
    owner = user_ids(settings.dkim.signer_user, setting="dkim.signer_user")
    pair = dkim.generate(algorithm)
    write_secret(key_file, pair.private_pem, owner=owner)
    return DkimKey(domain, chosen, algorithm, DkimStatus.NEXT, now, key_file, record=pair.record)


def _choose_selector(
    settings: SiteConfig,
    folder: Path,
    keys: list[DkimKey],
    domain: str,
    selector: str | None,
    algorithm: str,
    now: int,
) -> str:
    taken = {k.selector for k in keys}
    if selector is not None:
        chosen = dkim.check_selector(selector)
        if chosen in taken or (folder / f"{chosen}.private").exists():
            raise AlreadyExists(
                f"DKIM selector {chosen} of {domain} already exists",
                hint="choose another --selector, or leave it out for a generated one",
            )
    else:
        day = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")
        base = dkim.default_selector(settings.dkim.selector_prefix, algorithm, day)
        chosen, n = base, 1
        while chosen in taken or (folder / f"{chosen}.private").exists():
            n += 1
            chosen = f"{base}{n}"
    return chosen


def keygen(
    store: Store,
    settings: SiteConfig,
    domain: str,
    *,
    actor: Actor,
    selector: str | None = None,
    algorithm: str | None = None,
    dry_run: bool = False,
) -> DkimKey:
    """Make a new key (status ``next``) for a domain in the store.

    With ``dry_run``, only say which selector would be made (no key, nothing written).

    Raises:
        NotFound: the domain is not in the store.
        SelectorInvalid / AlreadyExists: a bad or taken ``selector``.
    """
    name = get_domain(store, domain).name
    algo = dkim.check_algorithm(algorithm or settings.dkim.algorithms[0])
    folder = domain_dir(settings, name)
    if dry_run:
        keys = _load(folder, name)
        return _new_key(
            settings,
            folder,
            keys,
            name,
            selector=selector,
            algorithm=algo,
            now=actor.now,
            dry_run=True,
        )
    with _locked(folder):
        keys = _load(folder, name)
        key = _new_key(
            settings, folder, keys, name, selector=selector, algorithm=algo, now=actor.now
        )
        try:
            _save(folder, [*keys, key])
        except BaseException:
            key.key_file.unlink(missing_ok=True)
            raise
    _audit(store, actor, "dkim.keygen", name, key)
    return key


def rotate(
    store: Store,
    settings: SiteConfig,
    domain: str,
    *,
    actor: Actor,
    algorithms: Sequence[str] | None = None,
    dry_run: bool = False,
) -> list[tuple[DkimKey, bool]]:
    """Make the next key for each algorithm that has none waiting; ``(key, made_now)`` pairs.

    With ``dry_run``, ``made_now`` means "would be made" and nothing is written.
    """
    name = get_domain(store, domain).name
    wanted = [dkim.check_algorithm(a) for a in (algorithms or settings.dkim.algorithms)]
    out: list[tuple[DkimKey, bool]] = []
    for algo in dict.fromkeys(wanted):
        waiting = [
            k
            for k in list_keys(store, settings, name, records=False)
            if k.algorithm == algo and k.status == DkimStatus.NEXT
        ]
        if waiting:
            out.append((with_record(waiting[-1]), False))
        else:
            made = keygen(store, settings, name, actor=actor, algorithm=algo, dry_run=dry_run)
            out.append((made, True))
    return out


def _find(keys: list[DkimKey], selector: str, domain: str) -> DkimKey:
    chosen = dkim.check_selector(selector)
    for key in keys:
        if key.selector == chosen:
            return key
    raise NotFound(
        f"DKIM selector {chosen} of {domain} does not exist",
        hint=f"list them with 'mailprov dkim list {domain}'",
    )


def activate(
    store: Store,
    settings: SiteConfig,
    domain: str,
    selector: str,
    *,
    actor: Actor,
    lookup: Callable[[DkimKey], CheckResult] | None,
    force: bool = False,
    dry_run: bool = False,
) -> tuple[DkimKey, bool]:
    """Make a published ``next`` key the signing key of its algorithm; ``(key, changed)``.

    Args:
        lookup: checks the key's record in DNS; required unless ``force``.

    Raises:
        DkimNotPublished: DNS does not show the record (and not ``force``).
    """
    name = get_domain(store, domain).name
    folder = domain_dir(settings, name)
    with _locked(folder):
        keys = _load(folder, name)
        key = with_record(_find(keys, selector, name))
        if key.status == DkimStatus.RETIRED:
            raise InvalidValue(
                f"DKIM selector {key.selector} was retired and cannot sign again",
                hint=f"make a new key with 'mailprov dkim rotate {name}'",
            )
        if key.signing:
            return key, False
        if not force:
            if lookup is None:  # pragma: no cover - wiring error
                msg = "activate needs a lookup unless forced"
                raise TypeError(msg)
            seen = lookup(key)
            if seen.status != "ok":
                raise DkimNotPublished(
                    f"DNS does not show the record of {key.dns_name} yet ({seen.status}: "
                    f"{seen.detail or 'found ' + ', '.join(seen.found)})",
                    check=seen.to_json(),
                )
        updated = []
        for other in keys:
            if other.signing and other.algorithm == key.algorithm:
                other = replace(other, superseded_at=actor.now)  # noqa: PLW2901
            if other.selector != key.selector:
                updated.append(other)
        # The activated key goes last: on a same-second tie, the last listed signs.
        updated.append(replace(key, status=DkimStatus.ACTIVE, activated_at=actor.now, record=None))
        if dry_run:
            done = next(k for k in _mark_signers(updated) if k.selector == key.selector)
            return replace(done, record=key.record), True
        _save(folder, updated)
    result = next(k for k in _mark_signers(updated) if k.selector == key.selector)
    _audit(store, actor, "dkim.activate", name, result)
    return replace(result, record=key.record), True


def retire(
    store: Store,
    settings: SiteConfig,
    domain: str,
    selector: str,
    *,
    actor: Actor,
    force: bool = False,
    dry_run: bool = False,
) -> tuple[DkimKey, bool]:
    """Take a replaced (or unused) key out of DNS and the signer, and delete its private key.

    Raises:
        InUse: the key still signs, or was replaced less than ``retire_after_days`` ago
            (unless ``force``).
    """
    name = get_domain(store, domain).name
    folder = domain_dir(settings, name)
    with _locked(folder):
        keys = _load(folder, name)
        key = _find(keys, selector, name)
        if key.status == DkimStatus.RETIRED:
            return key, False
        if key.signing and not force:
            raise InUse(
                f"DKIM selector {key.selector} still signs mail for {name}",
                hint="activate its successor first (or pass --skip-checks to stop signing with it)",
            )
        wait = settings.dkim.retire_after_days * DAY
        since = key.superseded_at
        if (
            key.status == DkimStatus.ACTIVE
            and since is not None
            and actor.now - since < wait
            and not force
        ):
            raise InUse(
                f"DKIM selector {key.selector} was replaced at {iso(since)}; "
                f"mail signed with it may "
                f"still be in transit until {iso(since + wait)}",
                hint="retire it after that time (dkim.retire_after_days), or pass --skip-checks",
            )
        done = replace(key, status=DkimStatus.RETIRED, retired_at=actor.now, signing=False)
        if dry_run:
            return done, True
        _save(folder, [done if k.selector == key.selector else k for k in keys])
        key.key_file.unlink(missing_ok=True)
    _audit(store, actor, "dkim.retire", name, done)
    return done, True


def published(store: Store, settings: SiteConfig, domain: str) -> list[DkimKey]:
    """Keys whose records belong in DNS (next and active), with their records."""
    return [
        k
        for k in list_keys(store, settings, domain)
        if k.status in {DkimStatus.NEXT, DkimStatus.ACTIVE}
    ]


def signers(store: Store, settings: SiteConfig) -> list[DkimKey]:
    """The signing keys of every domain in the store (what OpenDKIM's tables list)."""

    out: list[DkimKey] = []
    for name in domain_names(store):
        folder = domain_dir(settings, name)
        for key in _load(folder, name):
            if key.signing:
                read_secret(
                    key.key_file, DKIM_KEY
                )  # refuse to hand OpenDKIM an unsafe or missing key
                out.append(key)
    return out
