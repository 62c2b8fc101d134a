"""A third-party OpenID Connect provider for the tests: ``oidc-provider-mock`` (PyPI), run as
its own process on 127.0.0.1, with PKCE and the client secret enforced in front of it.

Usage: ``MOCK_CLIENT_SECRET=… python oidc_provider.py PORT`` (the secret never on argv).

oidc-provider-mock is an authlib-based provider whose users' claims a test sets through
its user API (``PUT /users/{sub}`` with any JSON object: a nested ``verified_claims``
and a ``jti`` go into the ID token as given). Two things it does not check, which a
real provider does, are checked here by a WSGI layer in front of it, written against
the RFCs and not against mailprov's code:

* PKCE (RFC 7636): the mock ignores ``code_challenge``. The layer remembers the
  challenge of each code it sees issued and refuses a token request whose
  ``code_verifier`` does not hash (S256) to it (``invalid_grant``).
* The client secret: the mock accepts any. The layer refuses a token request whose
  HTTP Basic credentials are not this client's (``invalid_client``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import threading
import warnings
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Environ = dict[str, Any]


class Enforcer:
    """PKCE S256 and the client secret, checked in front of the mock."""

    def __init__(self, app: Any, secret: str) -> None:
        self.app = app
        self.secret = secret
        self.challenges: dict[str, tuple[str | None, str | None]] = {}
        self.lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: Any) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/oauth2/authorize" and method == "POST":
            return self._authorize(environ, start_response)
        if path == "/oauth2/token" and method == "POST":
            return self._token(environ, start_response)
        return self.app(environ, start_response)

    def _authorize(self, environ: Environ, start_response: Any) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        challenge = (query.get("code_challenge") or [None])[0]
        method = (query.get("code_challenge_method") or [None])[0]

        def remember(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            for name, value in headers:
                if name.lower() == "location":
                    code = (parse_qs(urlsplit(value).query).get("code") or [None])[0]
                    if code:
                        with self.lock:
                            self.challenges[code] = (challenge, method)
            return start_response(status, headers, exc_info)

        return self.app(environ, remember)

    def _refuse(self, start_response: Any, error: str, description: str) -> list[bytes]:
        body = json.dumps({"error": error, "error_description": description}).encode()
        start_response(
            "401 Unauthorized" if error == "invalid_client" else "400 Bad Request",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _token(self, environ: Environ, start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(raw)
        form = parse_qs(raw.decode("utf-8"))
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        client_secret = ""
        if scheme.lower() == "basic":
            decoded = base64.b64decode(credentials).decode("utf-8")
            client_secret = unquote(decoded.partition(":")[2])
        if client_secret != self.secret:
            return self._refuse(start_response, "invalid_client", "wrong client secret")
        if (form.get("grant_type") or [""])[0] == "authorization_code":
            code = (form.get("code") or [""])[0]
            verifier = (form.get("code_verifier") or [""])[0]
            with self.lock:
                challenge, method = self.challenges.pop(code, (None, None))
            digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
            if method != "S256" or not verifier or challenge != expected:
                return self._refuse(start_response, "invalid_grant", "PKCE verification failed")
        return self.app(environ, start_response)


def main() -> None:
    """Serve the mock (ID tokens live 300 s, within the gate's 600 s) until killed."""
    port, secret = int(sys.argv[1]), os.environ["MOCK_CLIENT_SECRET"]
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http, on loopback only
    warnings.simplefilter("ignore")  # authlib's deprecation notices about its own jose
    import werkzeug.serving
    from oidc_provider_mock import app

    provider = app(require_nonce=True, access_token_max_age=timedelta(seconds=300))
    server = werkzeug.serving.make_server(
        "127.0.0.1", port, Enforcer(provider, secret), threaded=True
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
