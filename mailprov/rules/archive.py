"""The backup file format: a gzip'd tar with a manifest of SHA-256 sums, optionally encrypted.

Built and read in memory, no file I/O here. ``manifest.json`` comes first and lists every
other member with its size and SHA-256; :func:`unpack` refuses an archive with a member
missing, added, renamed, of another size or with another sum, and names outside the
archive's own folders, before anything is used.

Encryption (``--passphrase-stdin``) wraps the whole archive: the key comes from the
passphrase through scrypt (memory-hard, so guessing is slow on GPUs too; RFC 7914 with
N = 2**17, r = 8, p = 1, OWASP's recommendation) and a random salt; the archive is sealed
with AES-256-GCM, which authenticates it, so a wrong passphrase or any changed byte is
refused before a byte is parsed. Both come with ``cryptography``, which mailprov uses
already; Fernet was not used because it has no key derivation and base64-inflates by a third.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
import zlib
from dataclasses import dataclass
from typing import Any

from mailprov.errors import BackupInvalid

MANIFEST = "manifest.json"
FORMAT = "mailprov-backup"
FORMAT_VERSION = 1
MAGIC = b"MAILPROV-BACKUP-ENCRYPTED\n"
SCRYPT = {"n": 2**17, "r": 8, "p": 1}
#: The top-level folders an archive may hold.
FOLDERS = ("store", "dkim", "identity", "site", "deploy")


@dataclass(frozen=True)
class Archive:
    """A verified archive: its manifest and its files by name."""

    manifest: dict[str, Any]
    files: dict[str, bytes]


def sha256(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def pack(files: dict[str, bytes], meta: dict[str, Any], *, mtime: int) -> bytes:
    """A gzip'd tar of ``files`` led by a manifest of ``meta`` plus each file's size and sum."""
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        **meta,
        "files": {n: {"size": len(d), "sha256": sha256(d)} for n, d in sorted(files.items())},
    }
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        members = [(MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))]
        for name, data in [*members, *sorted(files.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o600
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _safe(name: str) -> bool:
    parts = name.split("/")
    return name == MANIFEST or (
        parts[0] in FOLDERS and len(parts) >= 2 and all(p not in ("", ".", "..") for p in parts)
    )


def unpack(data: bytes) -> Archive:
    """Read and verify an (unencrypted) archive.

    Raises:
        BackupInvalid: truncated, not a backup, or a member that does not match the manifest.
    """
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                if not info.isfile() or not _safe(info.name) or info.name in files:
                    raise BackupInvalid(f"the backup holds an unexpected member {info.name!r}")
                handle = tar.extractfile(info)
                files[info.name] = handle.read() if handle is not None else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BackupInvalid(
            f"the backup cannot be read (truncated or not a backup): {exc}"
        ) from None
    try:
        manifest = json.loads(files.pop(MANIFEST))
        listed = manifest["files"]
        if manifest["format"] != FORMAT:
            raise KeyError("format")
    except (KeyError, TypeError, ValueError):
        raise BackupInvalid(
            "the backup has no readable manifest (not a mailprov backup?)"
        ) from None
    if manifest["version"] > FORMAT_VERSION:
        raise BackupInvalid(
            f"the backup's format version {manifest['version']} is newer than this mailprov's",
            hint="restore it with the mailprov version that made it, or a newer one",
        )
    problems = [f"{n}: missing" for n in sorted(set(listed) - set(files))]
    problems += [f"{n}: not in the manifest" for n in sorted(set(files) - set(listed))]
    for name in sorted(set(files) & set(listed)):
        data_ = files[name]
        if len(data_) != listed[name]["size"] or sha256(data_) != listed[name]["sha256"]:
            problems.append(f"{name}: checksum mismatch")
    if problems:
        raise BackupInvalid(
            f"the backup does not match its manifest ({problems[0]}); nothing was restored",
            problems=problems,
        )
    return Archive(manifest, files)


def _key(passphrase: bytes, salt: bytes, params: dict[str, int]) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # noqa: PLC0415  (lazy: only encrypted backups need it)

    return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(
        passphrase
    )


def encrypt(data: bytes, passphrase: bytes) -> bytes:
    """``data`` sealed with AES-256-GCM under a key scrypt derives from ``passphrase``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415  (lazy: only encrypted backups need it)

    salt, nonce = os.urandom(16), os.urandom(12)
    header = {
        "cipher": "AES-256-GCM",
        "kdf": "scrypt",
        **SCRYPT,
        "salt": base64.b64encode(salt).decode("ascii"),
        "nonce": base64.b64encode(nonce).decode("ascii"),
    }
    head = MAGIC + json.dumps(header, sort_keys=True).encode("ascii") + b"\n"
    return head + AESGCM(_key(passphrase, salt, SCRYPT)).encrypt(nonce, data, head)


def is_encrypted(data: bytes) -> bool:
    """True if ``data`` starts like an encrypted backup."""
    return data.startswith(MAGIC)


def decrypt(data: bytes, passphrase: bytes) -> bytes:
    """The archive inside an encrypted backup.

    Raises:
        BackupInvalid: a wrong passphrase, or the file was changed or cut short.
    """
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415  (lazy: only encrypted backups need it)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415  (lazy: only encrypted backups need it)

    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : end])
        params = {k: int(header[k]) for k in ("n", "r", "p")}
        salt = base64.b64decode(header["salt"])
        nonce = base64.b64decode(header["nonce"])
        if end < 0 or params["n"] > 2**20 or params["r"] > 32 or params["p"] > 16:
            raise ValueError("unusable parameters")
    except (KeyError, TypeError, ValueError):
        raise BackupInvalid("the encrypted backup's header is damaged") from None
    head = data[: end + 1]
    try:
        return AESGCM(_key(passphrase, salt, params)).decrypt(nonce, data[end + 1 :], head)
    except (InvalidTag, ValueError):
        raise BackupInvalid(
            "the backup cannot be decrypted: the passphrase is wrong, or the file was changed "
            "or cut short; nothing was restored"
        ) from None
