"""DKIM signing, RSA + Ed25519: rspamd's dkim_signing vs the two OpenDKIM instances.

Both sites run rspamd as the inbound milter (as a site with [rspamd] enabled does) and
sign every message twice (RSA-2048 and Ed25519, keys made by ``dkim rotate`` and
published in a private knot). Site "opendkim": ``[dkim] sign`` (rspamd scans, then the two
OpenDKIM milters sign). Site "rspamd": no OpenDKIM; rspamd's dkim_signing signs with the
same kind of keys in the same pass (a bench-only override.d/dkim_signing.conf). Load:
smtp-source, 10 sessions, 1 KiB messages from 127.0.0.1 (mynetworks: signed) into port 25,
landed in a Maildir. The first message of each site is checked for both signatures with
dkimpy against knot.

Usage: .venv/bin/python bench/dkim_signers.py [--messages 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dkim
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rspamd_filter import count
from tests.integration.conftest import (
    DKIM_TOML,
    RSPAMD_PORTS,
    RSPAMD_TOML,
    publish_zone,
    safe_base,
    start_redis,
)
from tests.integration.knot import Knot
from tests.integration.stack import MailStack, render_site

PW = "Bench-Password-1"

SIGNING = """# bench only: rspamd signs RSA + Ed25519 for example.test
enabled = true;
sign_local = true;
sign_authenticated = true;
use_domain = "header";
allow_username_mismatch = true;
domain {{
  example.test {{
    selectors = [
{selectors}
    ];
  }}
}}
"""


def run_load(stack: MailStack, messages: int) -> float:
    maildir = stack.root / "mail" / "example.test" / "bob" / "Maildir"
    before = count(maildir)
    t0 = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            "-l",
            "1024",
            "-m",
            str(messages),
            "-s",
            "10",
            "-M",
            "client.example.test",
            "-f",
            "load@example.test",
            "-t",
            "bob@example.test",
            f"{stack.host}:{stack.ports['smtp']}",
        ],
        check=True,
        capture_output=True,
    )
    while count(maildir) - before < messages:
        if time.perf_counter() - t0 > 600:
            raise TimeoutError(f"{count(maildir) - before} of {messages} landed\n{stack.log()}")
        time.sleep(0.02)
    return messages / (time.perf_counter() - t0)


def verify_first(stack: MailStack, knot: Knot) -> list[str]:
    """Each DKIM signature's algorithm on one landed message, marked when dkimpy's
    verification against knot fails."""
    maildir = stack.root / "mail" / "example.test" / "bob" / "Maildir"
    raw = next(p for d in ("new", "cur") for p in sorted((maildir / d).glob("*"))).read_bytes()
    # The Maildir stores LF line ends; DKIM's simple body canonicalization needs CRLF.
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    res = dns.resolver.Resolver(configure=False)
    res.nameservers, res.port = ["127.0.0.1"], knot.port

    def txt(name: bytes, timeout: int = 5) -> bytes:
        del timeout
        answer = res.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    found = []
    d = dkim.DKIM(raw)
    sigs = [line for line in raw.split(b"\n") if line.lower().startswith(b"dkim-signature")]
    for idx in range(len(sigs)):
        ok = d.verify(idx=idx, dnsfunc=txt)
        algorithm = d.signature_fields.get(b"a", b"?").decode()
        found.append(algorithm if ok else f"{algorithm} (FAILED)")
    return found


def _sodium_key(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(seed + public) + b"\n"


def build(name: str, base: Path, knot: Knot, redis_port: int) -> MailStack:
    """Render one site (keys made, published and activated) with its signer wired in."""
    root = base / name
    root.mkdir()
    root.chmod(0o755)

    def prepare(stack: MailStack) -> None:
        run = stack.root / "odrun"
        run.mkdir()
        shutil.chown(run, "opendkim", "opendkim")
        for sub in ("rspamd-db", "rspamd-run"):
            (stack.root / sub).mkdir()
            shutil.chown(stack.root / sub, "_rspamd", "_rspamd")
        status, rotated = stack.cli.json("dkim", "rotate", stack.domain)
        assert status == 0, rotated
        publish_zone(stack, knot)
        for key in rotated["keys"]:
            status, doc = stack.cli.json("dkim", "activate", stack.domain, key["selector"])
            assert status == 0, doc
        stack.__dict__["keys"] = rotated["keys"]

    dkim_toml = DKIM_TOML.replace("{knot}", knot.address)
    if name == "rspamd":
        dkim_toml = dkim_toml.replace("sign = true", "sign = false")
    toml = RSPAMD_TOML.replace("{knot}", knot.address).replace("{redis}", str(redis_port))
    toml = toml.replace("check_local = true", "check_local = false")
    stack = render_site(
        root,
        f"sqlite:///{root}/m.sqlite",
        name=name[:2],
        extra_toml=dkim_toml + toml,
        prepare=prepare,
        extra_ports=RSPAMD_PORTS[:3],
    )
    if name == "rspamd":
        keys = stack.root / "rspamd-db" / "dkim"
        keys.mkdir()
        entries = []
        for key in stack.__dict__["keys"]:
            src = next((stack.root / "dkim").rglob(f"{key['selector']}.private"))
            dst = keys / src.name
            if key["algorithm"] == "ed25519":
                # rspamd 3.4 cannot read an Ed25519 key in PEM ("cannot extract rsa key from
                # evp key"): it wants libsodium's 64-byte secret key (seed + public), base64.
                dst.write_bytes(_sodium_key(src.read_bytes()))
            else:
                shutil.copyfile(src, dst)
            shutil.chown(dst, "_rspamd", "_rspamd")
            entries.append(f'      {{ path = "{dst}"; selector = "{key["selector"]}"; }}')
        conf = stack.target / "rspamd" / "override.d" / "dkim_signing.conf"
        real = conf.resolve()
        real.chmod(0o644)
        real.write_text(SIGNING.format(selectors=",\n".join(entries)))
    stack.add_mailbox("bob@example.test", PW, "--quota", "0")
    return stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mp-dkb-", dir=safe_base()))
    base.chmod(0o755)
    knot = Knot.start(base / "knot")
    redis, redis_port = start_redis(base)
    stacks: dict[str, MailStack] = {}
    try:
        for name in ("opendkim", "rspamd"):
            stacks[name] = build(name, base, knot, redis_port)
        results: dict[str, list[float]] = {n: [] for n in stacks}
        verified: dict[str, list[str]] = {}
        serial = [10]
        for _ in range(args.rounds):
            for name, stack in stacks.items():
                # Both sites publish example.test with their own keys: serve this one's.
                serial[0] += 1
                stack.__dict__["_serial"] = serial[0]
                publish_zone(stack, knot)
                stack.start(greet=("smtp",))
                try:
                    results[name].append(run_load(stack, args.messages))
                    verified.setdefault(name, verify_first(stack, knot))
                finally:
                    stack.stop()
    finally:
        redis.terminate()
        redis.wait()
        knot.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"{args.messages} messages x {args.rounds} rounds, smtp-source 10 sessions, 1 KiB")
    med = {n: statistics.median(r) for n, r in results.items()}
    for name, runs in results.items():
        print(
            f"{name:8} landed {med[name]:6.0f} msg/s (runs: {', '.join(f'{r:.0f}' for r in runs)})"
            f"  signatures verified by dkimpy: {verified[name]}"
        )
    print(
        f"ratio rspamd-signs / opendkim-signs (landed msg/s): {med['rspamd'] / med['opendkim']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
