"""A Mailpit-compatible API, for the clients that already speak Mailpit's.

Mailpit's paths collide with mailprov's own (``/api/v1/messages`` lists
messages in both, with different shapes and parameters), so the compatible API
lives under a base URL on the same listener: point a Mailpit client at
``http://127.0.0.1:8025/mailpit`` instead of ``http://127.0.0.1:8025``. Every
client read for this (``mailpit-api-client``, ``mailpit-api``,
``cypress-mailpit``) takes a base URL and keeps its path, and one listener means
one port, one Host/Origin/token gate and nothing new to configure.

``routes`` is the aiohttp sub-application, ``search`` compiles Mailpit's search
language to SQL over the relay's index, ``views`` builds Mailpit's JSON shapes,
``openapi`` describes the subset.
"""

from mailprov.relay.mailpit.routes import PREFIX, build_mailpit_app

__all__ = ["PREFIX", "build_mailpit_app"]
