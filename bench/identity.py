"""Identity gate benchmark: token checks vs raw ES256, and the whole request flow vs hashing alone.

Run: .venv/bin/python bench/identity.py [--seconds S] [--flows N]

1. Tokens verified per second through the full check list (``verify_token``: header,
   key, signature, claims, verified claims) vs raw ``cryptography`` ES256 signature
   verifications per second on the same key and signing input. Goal: ratio >= 0.5.
2. ``request open -> verify -> confirm`` end to end per second on SQLite with
   {ARGON2ID} hashing (services called directly; codes "sent" to an in-memory
   list) vs {ARGON2ID} hashes per second alone, measured in the same run.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def paired_rates(
    first: Callable[[], object], second: Callable[[], object], seconds: float
) -> tuple[float, float]:
    """Calls per second of both, measured in alternating 0.1 s slices (fair on a busy machine)."""
    first(), second()
    counts, spent = [0, 0], [0.0, 0.0]
    while sum(spent) < 2 * seconds:
        for index, func in enumerate((first, second)):
            start = time.perf_counter()
            while (elapsed := time.perf_counter() - start) < 0.1:
                func()
                counts[index] += 1
            spent[index] += elapsed
    return counts[0] / spent[0], counts[1] / spent[1]


def bench_tokens(seconds: float) -> tuple[float, float]:
    """(full verify_token per second, raw ES256 verify per second)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from joserfc import jwt
    from joserfc.jwk import ECKey

    from mailprov.identity.tokens import TrustedIssuer, TrustedKeys, verify_token

    key = ECKey.generate_key("P-256", parameters={"kid": "b1", "alg": "ES256", "use": "sig"})
    issuer = TrustedIssuer("https://idp.bench", "aud", {"nist_800_63A": "ial2"})
    keys = TrustedKeys.build([(issuer, json.dumps({"keys": [key.as_dict(private=False)]}))])
    now = int(time.time())
    claims = {
        "iss": issuer.iss,
        "aud": "aud",
        "sub": "s",
        "jti": "j",
        "nonce": "n",
        "iat": now,
        "exp": now + 300,
        "verified_claims": {
            "verification": {
                "trust_framework": "nist_800_63A",
                "assurance_level": "ial2",
                "time": "2026-01-01T00:00Z",
            },
            "claims": {"given_name": "A", "family_name": "B", "birthdate": "1990-01-01"},
        },
    }
    token = jwt.encode(
        {"typ": "mailprov-idv+jwt", "alg": "ES256", "kid": "b1"}, claims, key, algorithms=["ES256"]
    )
    head, body, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = key.get_op_key("verify")
    if not isinstance(public, ec.EllipticCurvePublicKey):
        public = public.public_key()
    message = f"{head}.{body}".encode()
    return paired_rates(
        lambda: verify_token(token, keys=keys, now=now, nonce="n"),
        lambda: public.verify(der, message, ec.ECDSA(hashes.SHA256())),
        seconds,
    )


def bench_flow(flows: int) -> tuple[float, float]:
    """(request flows per second end to end on SQLite, argon2id hashes per second)."""
    from joserfc import jwt
    from joserfc.jwk import ECKey

    from mailprov.model import Secret
    from mailprov.rules.hashing import hash_password
    from mailprov.services import provisioning, trust
    from mailprov.services.accounts import Actor, add_domain
    from mailprov.settings import load_settings
    from mailprov.store import open_store
    from mailprov.store.migrate import upgrade

    folder = Path(tempfile.mkdtemp(prefix="mailprov-bench-"))
    url = f"sqlite:///{folder / 'bench.sqlite'}"
    upgrade(url)
    store = open_store(url)
    settings = load_settings(env={}, flags={"store.url": url})
    now = int(time.time())
    add_domain(store, "bench.test", actor=Actor("bench", now))
    key = ECKey.generate_key("P-256", parameters={"kid": "f1", "alg": "ES256", "use": "sig"})
    (folder / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    trust.add_issuer(
        store,
        iss="https://idp.bench",
        jwks_file=folder / "jwks.json",
        audience="aud",
        actor=Actor("bench", now),
    )
    sent: list[str] = []

    def send(message: Any) -> str:
        sent.append(message.body)
        return "memory"

    pepper = secrets.token_bytes(32)

    def one(index: int) -> None:
        actor = Actor("bench", int(time.time()))
        req = provisioning.open_request(
            store,
            settings,
            address=f"user{index}@bench.test",
            kind="personal",
            recovery=f"r{index}@home.example",
            accept_terms=True,
            send=send,
            actor=actor,
        )
        claims = {
            "iss": "https://idp.bench",
            "aud": "aud",
            "sub": f"s{index}",
            "jti": secrets.token_hex(8),
            "nonce": req.nonce,
            "iat": actor.now,
            "exp": actor.now + 300,
            "verified_claims": {
                "verification": {
                    "trust_framework": "nist_800_63A",
                    "assurance_level": "ial2",
                    "time": "2026-01-01T00:00Z",
                },
                "claims": {"given_name": "A", "family_name": "B", "birthdate": "1990-01-01"},
            },
        }
        token = jwt.encode(
            {"typ": "mailprov-idv+jwt", "alg": "ES256", "kid": "f1"},
            claims,
            key,
            algorithms=["ES256"],
        )
        provisioning.verify_with_token(
            store, settings, req.id, Secret(token), pepper=pepper, send=send, actor=actor
        )
        code = sent[-1].split(" is ")[1][:6]
        provisioning.confirm(
            store, settings, req.id, Secret(code), pepper=pepper, send=send, actor=actor
        )

    one(0)
    start = time.perf_counter()
    for index in range(1, flows + 1):
        one(index)
    flow_rate = flows / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(flows):
        hash_password("Bench-Password-1", "ARGON2ID")
    hash_rate = flows / (time.perf_counter() - start)
    store.close()
    return flow_rate, hash_rate


def main() -> int:
    """Print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per token measurement")
    parser.add_argument("--flows", type=int, default=20, help="request flows to run")
    args = parser.parse_args()
    full, baseline = bench_tokens(args.seconds)
    ratio = full / baseline
    print(
        f"tokens: verify_token {full:,.0f}/s, raw ES256 verify {baseline:,.0f}/s, "
        f"ratio {ratio:.2f} (goal >= 0.5) {'OK' if ratio >= 0.5 else 'BELOW GOAL'}"
    )
    flow_rate, hash_rate = bench_flow(args.flows)
    print(
        f"flow: open->verify->confirm {flow_rate:.2f}/s on SQLite, argon2id hash alone "
        f"{hash_rate:.2f}/s, ratio {flow_rate / hash_rate:.2f}"
    )
    return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
