"""``mailprov identity trust …``, ``identity test-issuer …``, ``identity sign-challenge``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit, table


@click.group()
def identity() -> None:
    """Trusted identity providers and CAs; a test issuer; signing a certificate challenge."""


@identity.group()
def trust() -> None:
    """Which identity token issuers and certificate authorities the gate trusts."""


@trust.command("add-issuer")
@click.option("--iss", required=True, metavar="URL", help="The issuer's exact 'iss' value.")
@click.option(
    "--jwks",
    "jwks_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Local JWKS file with the issuer's public keys (kid, alg, use=sig).",
)
@click.option(
    "--audience", required=True, metavar="AUD", help="The 'aud' tokens must carry for us."
)
@click.option(
    "--framework",
    type=click.Choice(["ru_esia", "eidas", "nist_800_63A"]),
    help="Accept only this trust framework (default: all three, default levels).",
)
@click.option("--min-level", metavar="L", help="Minimum assurance level in --framework.")
@json_option
def trust_add_issuer(
    iss: str, jwks_file: Path, audience: str, framework: str | None, min_level: str | None
) -> None:
    """Trust an identity token issuer (again: replace its keys)."""
    from mailprov.services.trust import add_issuer

    app = app_context()
    info, changed = add_issuer(
        app.store,
        iss=iss,
        jwks_file=jwks_file,
        audience=audience,
        framework=framework,
        min_level=min_level,
        actor=app.actor(),
    )
    emit(
        click.get_current_context(),
        {"changed": changed, "issuer": info.to_json()},
        f"{'trusted' if changed else 'already trusted'}: issuer {info.iss} "
        f"(keys: {', '.join(info.kids)})",
    )


@trust.command("add-ca")
@click.option(
    "--ca",
    "ca_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA certificate (PEM or DER).",
)
@click.option(
    "--crl",
    "crl_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CRL file for certificates this CA (or its intermediates) issue; repeatable.",
)
@json_option
def trust_add_ca(ca_file: Path, crl_files: tuple[Path, ...]) -> None:
    """Trust a CA for client certificates. Without a current CRL every certificate is refused."""
    from mailprov.services.trust import add_ca

    app = app_context()
    info, changed = add_ca(app.store, ca_file=ca_file, crl_files=list(crl_files), actor=app.actor())
    emit(
        click.get_current_context(),
        {"changed": changed, "ca": info.to_json()},
        f"{'trusted' if changed else 'already trusted'}: CA {info.subject} "
        f"({info.fingerprint[:16]}…)",
    )


@trust.command("list")
@json_option
def trust_list() -> None:
    """List trusted issuers and CAs."""
    from mailprov.services.trust import list_trust

    issuers, cas = list_trust(app_context().store)
    rows = [["issuer", i.iss, ", ".join(i.kids), i.audience] for i in issuers]
    rows += [["ca", c.subject, c.fingerprint[:16], f"{len(c.crl_files)} CRL file(s)"] for c in cas]
    table(
        click.get_current_context(),
        {"issuers": [i.to_json() for i in issuers], "cas": [c.to_json() for c in cas]},
        ["type", "name", "keys", "details"],
        rows,
    )


@trust.command("remove")
@click.argument("name", metavar="ISS_OR_FINGERPRINT")
@json_option
def trust_remove(name: str) -> None:
    """Stop trusting an issuer (by iss) or a CA (by SHA-256 fingerprint)."""
    from mailprov.services.trust import remove_trust

    app = app_context()
    kind = remove_trust(app.store, name, actor=app.actor())
    emit(
        click.get_current_context(),
        {"changed": True, "removed": name, "type": kind},
        f"removed {kind} {name}",
    )


@identity.group("test-issuer")
def test_issuer() -> None:
    """A local TEST token issuer, for test rigs and demos (not an identity provider)."""


@test_issuer.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--audience", default="urn:mailprov:test", show_default=True, help="The 'aud' of its tokens."
)
@json_option
def test_issuer_init(directory: Path, audience: str) -> None:
    """Make an ES256 key (0600), a JWKS and an issuer config in DIRECTORY."""
    from mailprov.services.testissuer import init_issuer

    made = init_issuer(directory, audience=audience)
    hint = (
        f"trust it with: mailprov identity trust add-issuer --iss {made.iss} "
        f"--jwks {made.jwks_file} --audience {made.audience}"
    )
    emit(
        click.get_current_context(),
        {
            "changed": True,
            "iss": made.iss,
            "audience": made.audience,
            "kid": made.kid,
            "jwks_file": str(made.jwks_file),
            "test_issuer": True,
        },
        f"TEST issuer created in {directory}\niss: {made.iss}\n{hint}",
    )


@test_issuer.command("token")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--nonce", required=True, help="The request's nonce ('request open' prints it).")
@click.option("--sub", required=True, help="Subject id.")
@click.option("--level", required=True, help="Assurance level, e.g. ial2, substantial, confirmed.")
@click.option("--framework", default="nist_800_63A", show_default=True)
@click.option(
    "--claims", metavar="JSON", help='Verified claims to set, e.g. \'{"given_name": "Ann"}\'.'
)
@click.option(
    "--ttl", type=int, default=300, show_default=True, help="Lifetime in seconds (at most 600)."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the token to a new 0600 file.",
)
@json_option
def test_issuer_token(
    directory: Path,
    nonce: str,
    sub: str,
    level: str,
    framework: str,
    claims: str | None,
    ttl: int,
    out: Path | None,
) -> None:
    """Print a signed TEST token of form (A) (or write it to --out; required with --json)."""
    import json
    import os

    from mailprov.errors import InvalidValue, MissingOption
    from mailprov.services.testissuer import issue_token
    from mailprov.system.files import create_secret_file

    app = app_context()
    try:
        extra = json.loads(claims) if claims else {}
    except ValueError:
        raise InvalidValue("--claims is not valid JSON") from None
    if not isinstance(extra, dict):
        raise InvalidValue("--claims must be a JSON object")
    if app.json and out is None:
        raise MissingOption("with --json the token is never printed", hint="pass --out FILE")
    token = issue_token(
        directory,
        nonce=nonce,
        sub=sub,
        level=level,
        framework=framework,
        claims=extra,
        ttl=ttl,
        now=app.actor().now,
    )
    if out is None:
        click.echo(token)
        return
    with os.fdopen(create_secret_file(out), "w") as handle:
        handle.write(token + "\n")
    emit(
        click.get_current_context(),
        {"changed": True, "token_file": str(out)},
        f"token written to {out}",
    )


@identity.command("sign-challenge")
@click.option(
    "--p12",
    "p12_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .p12/.pfx container (read into memory only).",
)
@click.option(
    "--challenge", required=True, help="The challenge 'request open'/'request challenge' printed."
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the container password from standard input."
)
@click.option(
    "--cert-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the certificate (and chain) as PEM, for 'request verify --certificate'.",
)
@json_option
def sign_challenge(
    p12_file: Path, challenge: str, password_stdin: bool, cert_out: Path | None
) -> None:
    """Sign a certificate challenge with the key in a .p12 (the key stays in memory)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from mailprov.errors import InvalidValue, MissingOption
    from mailprov.identity.certificates import MAX_FILE, load_p12
    from mailprov.identity.certificates import sign_challenge as sign
    from mailprov.model import Secret

    try:
        with p12_file.open("rb") as handle:
            data = handle.read(MAX_FILE + 1)
    except OSError as exc:
        raise InvalidValue(f"cannot read {p12_file}: {exc.strerror}") from None
    if password_stdin:
        line = sys.stdin.readline()
        password = Secret(line[:-1] if line.endswith("\n") else line)
    elif app_context().interactive:
        password = Secret(click.prompt("Container password", hide_input=True))
    else:
        raise MissingOption(
            "the container password is needed and there is no terminal to ask on",
            hint="pass --password-stdin and the password on standard input",
        )
    key, cert, extra = load_p12(data, password)
    signature = sign(key, challenge)
    import base64

    encoded = base64.b64encode(signature).decode("ascii")
    if cert_out is not None:
        cert_out.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in [cert, *extra]))
    emit(
        click.get_current_context(),
        {
            "changed": cert_out is not None,
            "signature": encoded,
            "certificate_file": str(cert_out) if cert_out else None,
        },
        encoded,
    )
