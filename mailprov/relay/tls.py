"""TLS for the relay: the server context from the configured or generated certificate.

With ``relay.tls = "generate"`` the relay makes a fresh self-signed pair at each
start (:func:`mailprov.system.tls.self_signed`: EC P-256, one year, for the
relay's hostname, ``localhost``, 127.0.0.1 and ::1) in ``STORAGE/tls/`` (key
0600), so test rigs can trust it by pointing their client at ``cert.pem``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from mailprov.errors import ConfigInvalid


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context. Raises ConfigInvalid if the files cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigInvalid(
            f"the relay's TLS certificate {cert_file} / key {key_file} cannot be used: {exc}",
            hint="fix relay.tls_cert_file/tls_key_file, or set relay.tls = 'generate'",
        ) from None
    return context
