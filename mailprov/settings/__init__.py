"""The site configuration: layered, checked where it loads, frozen, knowing each value's origin.

- :mod:`~mailprov.settings.sections`: a frozen dataclass per ``[section]``, and :class:`SiteConfig`;
- :mod:`~mailprov.settings.kinds`: what each setting is (the field types and their checks);
- :mod:`~mailprov.settings.checks`, :mod:`~mailprov.settings.records`: a check per kind of value;
- :mod:`~mailprov.settings.consistency`: the rules that tie settings together;
- :mod:`~mailprov.settings.loader`: the file lookup order, the layers and their provenance.

A value that loads is safe to write into the servers' configs, DNS zones,
command lines and mail headers: code that receives a :class:`SiteConfig` does not
check it again. Only what depends on the host (a file exists, a user exists) is
checked where it is used.
"""

from __future__ import annotations

from mailprov.settings.loader import (
    CONFIG_ENV,
    CONFIG_NAME,
    SYSTEM_CONFIG,
    as_dict,
    find_config_file,
    load_settings,
    override,
)
from mailprov.settings.sections import (
    AccountsSection,
    CheckSection,
    DeploySection,
    DkimSection,
    DnsSection,
    DovecotSection,
    IdentitySection,
    NotifySection,
    PasswordsSection,
    PortsSection,
    PostfixSection,
    RelaySection,
    SiteConfig,
    SiteSection,
    StoreSection,
    TlsSection,
    WebSection,
)

__all__ = [
    "CONFIG_ENV",
    "CONFIG_NAME",
    "SYSTEM_CONFIG",
    "AccountsSection",
    "CheckSection",
    "DeploySection",
    "DkimSection",
    "DnsSection",
    "DovecotSection",
    "IdentitySection",
    "NotifySection",
    "PasswordsSection",
    "PortsSection",
    "PostfixSection",
    "RelaySection",
    "SiteConfig",
    "SiteSection",
    "StoreSection",
    "TlsSection",
    "WebSection",
    "as_dict",
    "find_config_file",
    "load_settings",
    "override",
]
