"""Sending codes and notices to a recovery contact: SMTP through the smarthost, or a hook.

Phone numbers go to the hook; mail addresses go by SMTP when a smarthost is set, and
to the hook otherwise. The hook command (an SMS gateway script, say) is run
with the destination on the first line of its stdin and the message after it;
neither ever appears in its argv, so the process list never shows a code. Exit
status 75 (EX_TEMPFAIL) means "try again later"; any other failure means the
destination cannot be reached. Otherwise the message goes by SMTP (aiosmtplib)
to ``notify.smarthost``, with STARTTLS and AUTH when configured.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from mailprov.errors import ConfigInvalid, RecoveryUnreachable, TemporaryFailure
from mailprov.rules.contacts import is_phone, mask
from mailprov.settings import NotifySection
from mailprov.system.run import SubprocessRunner
from mailprov.system.secrets import SecretKind, read_secret_text

EX_TEMPFAIL = 75


@dataclass(frozen=True)
class Message:
    """A short text message to one destination (the body may hold a code: never log it)."""

    destination: str
    subject: str
    body: str


def send(settings: NotifySection, message: Message, *, base_dir: Path | None = None) -> str:
    """Deliver ``message``; return the channel used (``hook`` or ``smtp``).

    Phone numbers (``+`` and digits) go to the hook, the SMS gateway; mail addresses go
    to the smarthost, or to the hook when no smarthost is set.

    Raises:
        RecoveryUnreachable: the destination was refused (or the hook failed), or it is a
            phone number and no hook is set.
        TemporaryFailure: the smarthost or hook could not be reached; retry later.
        ConfigInvalid: neither a smarthost nor a hook is configured.
    """
    if is_phone(message.destination):
        if not settings.hook:
            raise RecoveryUnreachable(
                f"{mask(message.destination)} is a phone number and [notify] hook is not set",
                hint="set [notify] hook to an SMS gateway command, or use a mail address",
            )
        _send_hook(settings, message)
        return "hook"
    if settings.smarthost:
        _send_smtp(settings, message, base_dir=base_dir)
        return "smtp"
    if settings.hook:
        _send_hook(settings, message)
        return "hook"
    raise ConfigInvalid(
        "no way to deliver codes: neither notify.smarthost nor notify.hook is set",
        hint='set [notify] smarthost = "127.0.0.1" (and port), or hook = "/path/to/sms-gateway"',
    )


def _send_hook(settings: NotifySection, message: Message) -> None:

    argv = shlex.split(settings.hook)
    text = f"{message.destination}\n{message.subject}\n\n{message.body}"
    done = SubprocessRunner().run(argv, input_text=text, timeout=settings.timeout_seconds)
    if done.returncode == EX_TEMPFAIL:
        raise TemporaryFailure(f"the notify hook {argv[0]} asked to try again later")
    if done.returncode != 0:
        raise RecoveryUnreachable(
            f"the notify hook {argv[0]} could not deliver to {message.destination} "
            f"(exit status {done.returncode})"
        )


def _smtp_password(settings: NotifySection, base_dir: Path | None) -> str | None:
    if not settings.password_file:
        return None
    path = Path(settings.password_file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return read_secret_text(path, SecretKind("notify.password_file"))


def _send_smtp(settings: NotifySection, message: Message, *, base_dir: Path | None) -> None:

    import aiosmtplib  # noqa: PLC0415  (lazy: only commands that send need it)

    mail = EmailMessage()
    mail["From"] = settings.sender
    mail["To"] = message.destination
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.body)
    password = _smtp_password(settings, base_dir)
    where = f"{settings.smarthost}:{settings.port}"
    try:
        asyncio.run(
            aiosmtplib.send(
                mail,
                hostname=settings.smarthost,
                port=settings.port,
                start_tls=settings.starttls,
                use_tls=False,
                username=settings.username or None,
                password=password,
                timeout=settings.timeout_seconds,
            )
        )
    except aiosmtplib.SMTPRecipientsRefused:
        raise RecoveryUnreachable(
            f"the smarthost {where} refused the recovery address {message.destination}"
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise RecoveryUnreachable(
                f"the smarthost {where} refused the message to {message.destination}: {exc.code}"
            ) from None
        raise TemporaryFailure(f"the smarthost {where} answered {exc.code}; retry later") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise TemporaryFailure(
            f"cannot send through the smarthost {where}: {type(exc).__name__}",
            hint="check [notify] smarthost/port, then 'mailprov request resend ID'",
        ) from None
