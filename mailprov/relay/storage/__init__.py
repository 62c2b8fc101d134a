"""Where the relay keeps captured mail: :class:`~mailprov.relay.storage.mailbox.MessageStore`."""

from mailprov.relay.storage.mailbox import MessageStore, Page, Query, Retention, StoredMessage

__all__ = ["MessageStore", "Page", "Query", "Retention", "StoredMessage"]
