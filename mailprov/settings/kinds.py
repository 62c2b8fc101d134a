"""What each setting is: the types the section dataclasses use, each with its check.

``Annotated[str, Rule(check)]`` says which check of :mod:`mailprov.settings.checks`
a string must pass (every string also passes :func:`~mailprov.settings.checks.plain_text`:
no control characters, no line breaks); ``Annotated[int, Range(...)]`` bounds a
number; a ``Literal`` is a closed set (matched without regard to case). The loader
reads these from the field types, so a new setting is checked by declaring it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mailprov.settings import checks, records
from mailprov.settings.checks import Range, Rule

# -- names and addresses
Hostname = Annotated[str, Rule(checks.fqdn)]
OptionalHostname = Annotated[str, Rule(checks.fqdn, optional=True)]
Host = Annotated[str, Rule(checks.host)]
OptionalHost = Annotated[str, Rule(checks.host, optional=True)]
IpAddress = Annotated[str, Rule(checks.ip)]
OptionalIpAddress = Annotated[str, Rule(checks.ip, optional=True)]
Ipv4Address = Annotated[str, Rule(checks.ipv4)]
Ipv6Address = Annotated[str, Rule(checks.ipv6)]
Network = Annotated[str, Rule(checks.network)]
TrustedHost = Annotated[str, Rule(checks.trusted_host)]
ListenAddress = Annotated[str, Rule(checks.listen_address)]
Endpoint = Annotated[str, Rule(checks.endpoint)]
OptionalEndpoint = Annotated[str, Rule(checks.endpoint, optional=True)]
OptionalNameserver = Annotated[str, Rule(checks.nameserver, optional=True)]
Nameserver = Annotated[str, Rule(checks.nameserver)]
Relayhost = Annotated[str, Rule(checks.relayhost, optional=True)]
MailAddress = Annotated[str, Rule(records.mail_address)]
MailtoList = Annotated[str, Rule(records.mailto_list, optional=True)]
ReportUriList = Annotated[str, Rule(records.report_uri_list, optional=True)]
MxPattern = Annotated[str, Rule(records.mx_pattern)]
StoreUrl = Annotated[str, Rule(checks.text, optional=True)]  # checked once resolved: loader
OptionalPublicUrl = Annotated[str, Rule(checks.public_url, optional=True)]
OptionalWebUrl = Annotated[str, Rule(checks.web_url, optional=True)]
ReturnUrl = Annotated[str, Rule(checks.return_url)]
DbHost = Annotated[str, Rule(checks.db_host)]
Backend = Annotated[str, Rule(checks.backend)]
OptionalBackendName = Annotated[str, Rule(checks.backend_ref, optional=True)]

# -- paths: written into servers' configs and units, or opened by mailprov only
ServerPath = Annotated[str, Rule(checks.server_path)]
OptionalServerPath = Annotated[str, Rule(checks.server_path, optional=True)]
DovecotBaseDir = Annotated[str, Rule(checks.dovecot_base_dir)]
LocalPath = Annotated[str, Rule(checks.local_path)]
OptionalLocalPath = Annotated[str, Rule(checks.local_path, optional=True)]

# -- names, words and text
UserName = Annotated[str, Rule(checks.user_name)]
PlainName = Annotated[str, Rule(checks.plain_name)]
SmtpUser = Annotated[str, Rule(checks.smtp_user, optional=True)]
Size = Annotated[str, Rule(checks.size)]
DovecotSize = Annotated[str, Rule(checks.dovecot_size)]
SpfText = Annotated[str, Rule(records.spf)]
SelectorPrefix = Annotated[str, Rule(records.selector_prefix, optional=True)]
Command = Annotated[str, Rule(checks.command, optional=True)]
Token = Annotated[str, Rule(checks.token)]
ClaimName = Annotated[str, Rule(checks.claim_name)]
Oid = Annotated[str, Rule(checks.oid)]
#: Read by mailprov only (e.g. a fault rule, parsed by the relay): the generic rules apply.
Text = Annotated[str, Rule(checks.text, optional=True)]

# -- numbers
Port = Annotated[int, Range(1, 65535)]
NonNegative = Annotated[int, Range(0)]
Positive = Annotated[int, Range(1)]
PositiveSeconds = Annotated[float, Range(0.001)]
NonNegativeSeconds = Annotated[float, Range(0)]
Score = Annotated[float, Range(0, 1000)]

# -- closed sets
PasswordPolicy = Literal["source", "nist"]
HashScheme = Literal["ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT"]
RelayMode = Literal["capture", "deliver", "forward"]
RelayTls = Literal["generate", "files", "site", "off"]
DmarcPolicy = Literal["none", "quarantine", "reject"]
MtaStsMode = Literal["enforce", "testing", "none"]
DkimAlgorithm = Literal["rsa-2048", "ed25519"]
TemporaryLogin = Literal["portal", "until-expiry"]
ResetRoute = Literal["contact", "identity"]
HostRole = Literal["all", "frontend", "backend"]
