"""The HTTP headers that keep captured mail from acting in the inbox's browser.

Three kinds of response, three policies:

- **The inbox's own pages** run only the inbox's static script and style
  (``script-src 'self'``: no inline script, no ``eval``), may not be framed by
  anyone (clickjacking the delete buttons) and send no referrer.
- **A message's HTML part** is served on its own URL into an ``<iframe
  sandbox>`` without ``allow-scripts``, ``allow-forms``, ``allow-popups`` or
  ``allow-same-origin``: its scripts do not run, its forms do not submit, it
  cannot navigate the inbox, and it has an opaque origin, so it cannot read
  the inbox or the API. The response repeats this with CSP's ``sandbox``
  directive (opened directly, the part is still sandboxed) and allows no
  request to anywhere: images only from ``data:`` (``cid:`` references are
  inlined as ``data:`` URIs). Only after the user
  clicks "load remote content" does the policy allow images, styles, fonts and
  media from ``http:``/``https:``. CSS in the part cannot cover the inbox: it
  styles only the iframe's own document.
- **Attachments and raw source** are downloads (``Content-Disposition:
  attachment``) with ``nosniff`` and the same sandbox, so a part that claims to
  be ``text/html`` or an SVG with a script never runs under the relay's origin.
"""

from __future__ import annotations

from email.utils import encode_rfc2231

PAGE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

_PART_COMMON = (
    "sandbox",
    "script-src 'none'",
    "object-src 'none'",
    "frame-src 'none'",
    "worker-src 'none'",
    "connect-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'self'",
)
HTML_CSP = "; ".join(
    (
        "default-src 'none'",
        "img-src data:",
        "style-src 'unsafe-inline'",
        "font-src data:",
        "media-src data:",
        *_PART_COMMON,
    )
)
HTML_REMOTE_CSP = "; ".join(
    (
        "default-src 'none'",
        "img-src data: http: https:",
        "style-src 'unsafe-inline' http: https:",
        "font-src data: http: https:",
        "media-src data: http: https:",
        *_PART_COMMON,
    )
)
DOWNLOAD_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"

_COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-DNS-Prefetch-Control": "off",
}


def page_headers() -> dict[str, str]:
    """Headers of the inbox's own HTML pages."""
    return {**_COMMON, "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"}


def html_part_headers(*, remote: bool) -> dict[str, str]:
    """Headers of a message's HTML part (framed by the inbox only)."""
    csp = HTML_REMOTE_CSP if remote else HTML_CSP
    return {**_COMMON, "Content-Security-Policy": csp, "X-Frame-Options": "SAMEORIGIN"}


_QUOTED = frozenset('"\\')


def download_headers(filename: str) -> dict[str, str]:
    """Headers of a download: always an attachment, never rendered under the relay's origin."""
    plain = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    encoded = encode_rfc2231(filename, "utf-8")
    disposition = f'attachment; filename="{plain}"; filename*={encoded}'
    return {**_COMMON, "Content-Security-Policy": DOWNLOAD_CSP, "Content-Disposition": disposition}
