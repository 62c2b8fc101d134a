"""The portal's machinery: pages from templates, forms, cookies, and calls into the API.

A page handler is a coroutine ``async def page(visit: Visit) -> web.StreamResponse``
registered with :func:`page`; a form handler is ``async def send(visit, form) ->
Outcome`` registered with :func:`form`. Neither implements a flow: they call the
JSON API's own operations with :func:`invoke` (the same body schemas, session
stages and handlers as ``/api/v1``), or the services those handlers call.

What every page gets for free:

- **Language** — :mod:`~mailprov.web.portal.i18n` picks it; templates use ``_()``.
- **Forms safe to send** — every form carries a CSRF token: bound to the session for
  a signed-in owner (:func:`mailprov.services.owner.csrf_token`), else to a random
  HttpOnly cookie (``mailprov_form``: a signed double-submit token). Every form also
  carries a random ``once`` value: the same form sent twice (a double click, a
  replay) gets the first sending's outcome instead of running again.
- **POST, redirect, GET** — a form handler answers an :class:`Outcome` (where to go,
  cookies to set), never a page, so no password or code stays in the browser's
  history for a reload to send again. An error goes to the next page in a signed
  ``mailprov_flash`` cookie (the error's code and details and the form's harmless
  fields — never a password, code, token or handle).
- **Headers** — a strict Content-Security-Policy (scripts and styles from this site
  only, no inline ones), ``frame-ancestors 'none'``, ``Referrer-Policy: same-origin``
  (``no-referrer`` would make browsers send ``Origin: null`` with forms, which the
  app's Origin check refuses); the app adds ``no-store``, ``nosniff`` and HSTS over HTTPS.

To add a page (e.g. two-factor): declare its API operations in ``web/<area>.py``;
write ``templates/portal/<name>.html`` extending ``base.html``; in a portal module,
``@page("GET", "/account/two-factor")`` to show it and ``@form("/account/two-factor",
back="/account/two-factor", session=True)`` to send it, each calling
``invoke(visit, "<operation id>", body)``; add its words to the catalogue
(``make messages``) and a test in ``tests/web/portal/``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from markupsafe import Markup

from mailprov.errors import MailprovError, NotSignedIn, SessionStageRefused
from mailprov.model import Secret
from mailprov.render.environment import templates_dir
from mailprov.services import owner
from mailprov.web.api import API, SESSION_COOKIE, Call, Cookie
from mailprov.web.app import (
    SERVICES,
    check_body,
    check_stage,
    client_address,
    secure_request,
)
from mailprov.web.portal import i18n
from mailprov.web.portal.texts import Explanation, explain

if TYPE_CHECKING:
    from jinja2.runtime import Context
    from multidict import MultiDictProxy

    from mailprov.web.app import Services

log = logging.getLogger(__name__)

TEMPLATES = templates_dir() / "portal"
STATIC = TEMPLATES / "static"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
FORM_COOKIE = "mailprov_form"
FLASH_COOKIE = "mailprov_flash"
APPLICATION_COOKIE = "mailprov_application"
#: How long a form's outcome is kept for a second sending of the same form.
ONCE_SECONDS = 120
#: At most this many outcomes are kept (a flood of forms must not fill the memory).
ONCE_KEPT = 10_000
#: How long the credentials wait, in this process's memory only, to be shown once.
SHOWN_SECONDS = 600
#: Form fields never kept in a flash cookie (secrets), whatever a handler asks.
SECRET_FIELDS = frozenset({"password", "current", "new", "repeat", "code", "token", "handle"})
FLASH_MAX = 3000
#: The longest field kept to fill a refused form again (a refused vacation reply may be
#: longer than the 10,000 characters allowed: it comes back whole, to be shortened).
VALUE_MAX = 100_000
#: A refused form kept in memory for its next page: this long, at most this many, this large.
VALUES_SECONDS = 120
VALUES_KEPT = 1000
VALUES_BYTES = 256 * 1024


@cache
def environment(lang: str) -> Environment:
    """The portal's Jinja2 environment for one language (HTML: autoescaped)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
        auto_reload=False,  # templates ship with the code: no stat() of each file per page
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(_gettext_callables(i18n.translations(lang)))
    env.filters["when"] = lambda value: i18n.format_datetime(value, lang)
    env.filters["address"] = i18n.display_address
    env.filters["domain"] = i18n.display_domain
    env.globals["lang"] = lang
    return env


#: At most this many translated messages without variables are kept ready per language.
MESSAGES_KEPT = 4096


def _gettext_callables(catalogue: Any) -> dict[str, Any]:
    """``_``, ``gettext`` and ``ngettext`` for the templates, doing what Jinja's new-style
    ones do (translate, mark safe, then ``%`` the escaped variables in) in one call instead
    of Jinja's two context calls per message; a message without variables is translated
    once. A page has dozens of messages: this is a good share of its rendering time."""
    ready: dict[str, str] = {}

    def marked(context: Context, text: str) -> str:
        # The catalogue is ours (as for Jinja's own gettext): its text is the page's markup.
        return Markup(text) if context.eval_ctx.autoescape else text  # noqa: S704

    @pass_context
    def gettext(context: Context, string: str, /, **variables: Any) -> str:
        if variables:
            return marked(context, catalogue.gettext(string)) % variables
        found = ready.get(string)
        if found is None:
            found = marked(context, catalogue.gettext(string)) % {}
            if len(ready) < MESSAGES_KEPT and context.eval_ctx.autoescape:
                ready[string] = found
        return found

    @pass_context
    def ngettext(
        context: Context, singular: str, plural: str, num: int, /, **variables: Any
    ) -> str:
        variables.setdefault("num", num)
        return marked(context, catalogue.ngettext(singular, plural, num)) % variables

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


# -- the portal's state in this process --------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a form handler decided: where to go next, and the cookies to set (None: clear)."""

    location: str
    cookies: tuple[tuple[str, str | None], ...] = ()


@dataclass
class Portal:
    """Per-process state: outcomes of forms already sent, and credentials waiting to be shown."""

    services: Services
    once: dict[str, tuple[float, asyncio.Future[Outcome]]] = field(default_factory=dict)
    shown: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    #: Refused forms too large for the flash cookie, until their next page (once).
    values: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)
    #: Password resets under way (``portal/reset.py``), by the HMAC of the browser's cookie.
    resets: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    #: Domain handles of the proofs a browser started (``portal/domain.py``), by the HMAC
    #: of its cookie: domain -> handle.
    domains: dict[str, tuple[float, dict[str, Secret]]] = field(default_factory=dict)

    def prune(self, now: float) -> None:
        """Forget what has outlived its time (and the oldest outcomes beyond ONCE_KEPT)."""
        for key in [k for k, (until, _) in self.once.items() if until <= now]:
            del self.once[key]
        for key in list(self.once)[: max(0, len(self.once) - ONCE_KEPT)]:
            if self.once[key][1].done():  # one still running stays: its twin waits on it
                del self.once[key]
        for key in [k for k, (until, _) in self.shown.items() if until <= now]:
            del self.shown[key]
        for key in [k for k, (until, _) in self.values.items() if until <= now]:
            del self.values[key]
        for key in list(self.values)[: max(0, len(self.values) - VALUES_KEPT)]:
            del self.values[key]
        for key in [k for k, (until, _) in self.resets.items() if until <= now]:
            del self.resets[key]
        for key in list(self.resets)[: max(0, len(self.resets) - ONCE_KEPT)]:
            del self.resets[key]
        for key in [k for k, (until, _) in self.domains.items() if until <= now]:
            del self.domains[key]
        for key in list(self.domains)[: max(0, len(self.domains) - ONCE_KEPT)]:
            del self.domains[key]

    async def run_once(self, key: str, make: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """The outcome of the form ``key``: run it the first time; later sendings (even while
        the first is still running) get the first's outcome.
        """
        now = time.monotonic()
        self.prune(now)
        entry = self.once.get(key)
        if entry is not None:
            return await asyncio.shield(entry[1])
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.once[key] = (now + ONCE_SECONDS, future)
        try:
            outcome = await make()
        except BaseException as exc:
            del self.once[key]
            future.set_exception(exc)
            future.exception()  # retrieved: waiting sendings re-raise it themselves
            raise
        future.set_result(outcome)
        return outcome

    def keep_values(self, values: dict[str, str]) -> str:
        """Keep a refused form's fields for its next page; the key the flash cookie carries.

        A form larger than ``VALUES_BYTES`` (more than any real form) keeps nothing.
        """
        key = secrets.token_urlsafe(16)
        if sum(len(k) + len(v) for k, v in values.items()) <= VALUES_BYTES:
            self.values[key] = (time.monotonic() + VALUES_SECONDS, values)
            self.prune(time.monotonic())
        return key

    def take_values(self, key: str) -> dict[str, str]:
        """A refused form's fields, removed: a reload of its page shows what is saved."""
        self.prune(time.monotonic())
        entry = self.values.pop(key, None)
        return entry[1] if entry is not None else {}

    def keep_credentials(self, number: str, credentials: dict[str, Any]) -> None:
        """Hold the credentials of request ``number`` until its page shows them (once)."""
        self.shown[number] = (time.monotonic() + SHOWN_SECONDS, credentials)

    def take_credentials(self, number: str) -> dict[str, Any] | None:
        """The credentials of request ``number``, removed: a second look finds nothing."""
        self.prune(time.monotonic())
        entry = self.shown.pop(number, None)
        return entry[1] if entry is not None else None


PORTAL: web.AppKey[Portal] = web.AppKey("portal", Portal)


# -- one visit: language, cookies, tokens ------------------------------------------------


def _mac(pepper: bytes, purpose: str, value: str) -> str:
    data = f"portal-{purpose}|{value}".encode("utf-8", "replace")
    return hmac.new(pepper, data, hashlib.sha256).hexdigest()


@dataclass
class Visit:
    """One request to the portal as its handlers see it."""

    request: web.Request
    services: Services
    portal: Portal
    lang: str
    form_cookie: str
    flash: dict[str, Any]
    cookies: list[tuple[str, str | None]] = field(default_factory=list)
    #: The owner's session once an operation of this visit has looked it up.
    session: owner.OwnerSession | None = None
    #: Cookies an API operation asked for, with their own path, lifetime and SameSite.
    api_cookies: list[Cookie] = field(default_factory=list)

    @classmethod
    def of(cls, request: web.Request) -> Visit:
        """The visit of ``request``: its language, its form cookie (made if missing), its flash."""
        services = request.app[SERVICES]
        lang = i18n.negotiate(
            request.cookies.get(i18n.LANG_COOKIE), request.headers.get("Accept-Language", "")
        )
        cookies: list[tuple[str, str | None]] = []
        form_cookie = request.cookies.get(FORM_COOKIE, "")
        if not 32 <= len(form_cookie) <= 64:
            form_cookie = secrets.token_urlsafe(32)
            cookies.append((FORM_COOKIE, form_cookie))
        flash: dict[str, Any] = {}
        raw = request.cookies.get(FLASH_COOKIE)
        if raw:
            flash = _unseal(services.pepper, raw)
            cookies.append((FLASH_COOKIE, None))
        return cls(request, services, request.app[PORTAL], lang, form_cookie, flash, cookies)

    @property
    def now(self) -> int:
        """The service's clock."""
        return self.services.now()

    @property
    def session_token(self) -> Secret | None:
        """The owner's session token from the cookie (not checked)."""
        raw = self.request.cookies.get(SESSION_COOKIE)
        return Secret(raw) if raw else None

    def application(self) -> tuple[str, Secret] | None:
        """The application this browser follows: its number and handle (not checked)."""
        number, sep, handle = self.request.cookies.get(APPLICATION_COOKIE, "").partition(":")
        if not sep or not number or not handle or len(number) > 16:
            return None
        return number, Secret(handle)

    def form_token(self) -> str:
        """The anonymous forms' CSRF token (HMAC of the form cookie)."""
        return _mac(self.services.pepper, "form", self.form_cookie)

    def session_form_token(self) -> str:
        """The signed-in forms' CSRF token (the API's, bound to the session)."""
        token = self.session_token
        return owner.csrf_token(self.services.pepper, token) if token is not None else ""

    def csrf_ok(self, given: str, *, session: bool) -> bool:
        """Whether ``given`` is this visit's token for a form of that kind (constant time)."""
        if session:
            token = self.session_token
            return token is not None and owner.csrf_ok(self.services.pepper, token, given)
        return (
            hmac.compare_digest(self.form_token().encode(), given.encode("utf-8", "replace"))
            and self.request.cookies.get(FORM_COOKIE) == self.form_cookie
        )

    def flash_error(self) -> Explanation | None:
        """The error the previous form left for this page, if any."""
        error = self.flash.get("error")
        return explain(error) if isinstance(error, dict) else None

    def flash_values(self) -> dict[str, str]:
        """The harmless fields of the form that was sent, to fill it again."""
        if "kept" in self.flash:  # taken once a visit: later calls read the copy
            self.flash["values"] = self.portal.take_values(str(self.flash.pop("kept")))
        values = self.flash.get("values")
        return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def memory_key(visit: Visit, purpose: str, value: str) -> str:
    """The key this process keeps a browser's state under: an HMAC of its cookie's value."""
    return _mac(visit.services.pepper, purpose, value)


def seal(pepper: bytes, data: dict[str, Any]) -> str:
    """A flash cookie's value: the data, signed with the site pepper."""
    payload = base64.urlsafe_b64encode(json.dumps(data, ensure_ascii=False).encode()).decode()
    return f"{payload}.{_mac(pepper, 'flash', payload)}"


def _unseal(pepper: bytes, raw: str) -> dict[str, Any]:
    payload, _, mac = raw.partition(".")
    if not hmac.compare_digest(_mac(pepper, "flash", payload).encode(), mac.encode()):
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def flash(visit: Visit, *, error: dict[str, Any] | None = None, **data: Any) -> tuple[str, str]:
    """The cookie that carries ``error`` and ``data`` to the next page (secrets dropped).

    The form's harmless fields go in the cookie while they fit; a larger form (a long
    vacation reply, many rules) waits in this process's memory for the next page
    (:meth:`Portal.keep_values`), the cookie naming it.
    """
    values = {
        k: str(v)[:VALUE_MAX]
        for k, v in dict(data.pop("values", {})).items()
        if k not in SECRET_FIELDS
    }
    content: dict[str, Any] = {**data, "values": values}
    if error is not None:
        content["error"] = error
    sealed = seal(visit.services.pepper, content)
    if len(sealed) > FLASH_MAX:  # never lose the error itself to an oversized form
        kept = visit.portal.keep_values(values)
        sealed = seal(visit.services.pepper, {**data, "error": error or {}, "kept": kept})
    return FLASH_COOKIE, sealed


def error_document(exc: MailprovError) -> dict[str, Any]:
    """What of an error a page or a flash may carry: code, number, IDG code, safe details."""
    data = exc.to_json()["error"]
    return {k: v for k, v in data.items() if k not in {"message", "hint", "exit_status"}}


# -- responses -----------------------------------------------------------------------------


def _apply_cookies(visit: Visit, response: web.StreamResponse) -> None:
    secure = secure_request(visit.request, visit.services)
    for cookie in visit.api_cookies:
        text = cookie.value.reveal() if isinstance(cookie.value, Secret) else cookie.value
        response.set_cookie(
            cookie.name,
            text,
            httponly=True,
            secure=secure,
            samesite=cookie.samesite,
            path=cookie.path,
            max_age=cookie.max_age,
        )
    for name, value in visit.cookies:
        if value is None:
            response.del_cookie(name, path="/")
        else:
            response.set_cookie(
                name, value, httponly=True, secure=secure, samesite="Strict", path="/"
            )


def render(visit: Visit, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page: ``template`` in the visit's language, with the cookies the visit decided."""
    app_cookie = visit.application()
    base = {
        "path": visit.request.path,
        "languages": [(code, i18n.NATIVE[code]) for code in i18n.LANGUAGES],
        "csrf": visit.form_token(),
        "session_csrf": visit.session_form_token(),
        "once": secrets.token_urlsafe(16),
        "signed_in": visit.session_token is not None,
        "error": visit.flash_error(),
        "values": visit.flash_values(),
        "application_number": app_cookie[0] if app_cookie else None,
    }
    html = environment(visit.lang).get_template(template).render({**base, **context})
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Content-Language"] = visit.lang
    # The browser's Origin header must name this site for a form to pass the Origin check;
    # no other site ever learns a page's address.
    response.headers["Referrer-Policy"] = "same-origin"
    _apply_cookies(visit, response)
    return response


def redirect(visit: Visit, outcome: Outcome) -> web.Response:
    """303 See Other to the outcome's page, with its cookies (and the visit's).

    The location is this site's (an Outcome's), or the identity provider's sign-in page.
    """
    response = web.Response(status=303, headers={"Location": outcome.location})
    visit.cookies.extend(outcome.cookies)
    _apply_cookies(visit, response)
    return response


def error_page(visit: Visit, explanation: Explanation, status: int) -> web.Response:
    """The error page: what happened, what to do, and the application's number."""
    return render(visit, "error.html", status=status, problem=explanation)


# -- calling the API's operations ------------------------------------------------------------


async def invoke(
    visit: Visit,
    operation_id: str,
    body: dict[str, Any] | None = None,
    *,
    path: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    handle: Secret | None = None,
    domain_handle: Secret | None = None,
) -> tuple[Any, Call]:
    """Run the API operation ``operation_id`` as the API would: its body schema, the session
    stage it needs, its handler (in a worker thread). Returns its answer and the call.

    Raises:
        MailprovError: what the operation raises (the API's refusals, unchanged).
    """
    ((answer, call),) = await invoke_all(
        visit,
        Step(
            operation_id, body, path=path, query=query, handle=handle, domain_handle=domain_handle
        ),
    )
    return answer, call


@dataclass(frozen=True)
class Step:
    """One operation for :func:`invoke_all`: its id and what :func:`invoke` takes."""

    operation_id: str
    body: dict[str, Any] | None = None
    path: Mapping[str, str] | None = None
    query: Mapping[str, str] | None = None
    handle: Secret | None = None
    domain_handle: Secret | None = None


async def invoke_all(visit: Visit, *steps: Step) -> list[tuple[Any, Call]]:
    """Run operations one after the other in one worker thread (a page that shows the answers
    of several: one trip to the thread pool, one session lookup). Stops at the first error.
    """
    services = visit.services
    trusted = frozenset(services.settings.web.trusted_proxies)
    now = services.now()
    prepared = []
    for step in steps:
        op = API.find(step.operation_id)
        call = Call(
            services=services,
            request=visit.request,
            body=check_body(op, step.body or {}),
            path=dict(step.path or {}),
            query=dict(step.query or {}),
            client=client_address(visit.request, trusted),
            now=now,
            handle=step.handle,
            domain_handle=step.domain_handle,
        )
        prepared.append((op, call))

    # Reads only (GET): one store transaction for all of them (Store.reading).
    reads = all(op.method == "GET" for op, _ in prepared)

    def run() -> list[tuple[Any, Call]]:
        looked_up = None
        done = []
        with services.store.reading() if reads else contextlib.nullcontext():
            if visit.session is None and any(op.stages is not None for op, _ in prepared):
                token = visit.session_token  # looked up once a visit
                if token is None:
                    raise NotSignedIn
                looked_up = visit.session = owner.session_for(
                    services.store, services.settings, token, now=now, touch=not reads
                )
            for op, call in prepared:
                if op.stages is not None:
                    if visit.session is None:
                        raise NotSignedIn
                    call.session, call.token = check_stage(op, visit.session), visit.session_token
                done.append((op.handler(call), call))
        if looked_up is not None and reads:  # a write: after the shared reads (Store.reading)
            owner.touch_session(services.store, looked_up, now=now)
        return done

    results = await asyncio.to_thread(run)
    for _, call in results:
        visit.api_cookies.extend(call.cookies)
        if isinstance(call.set_session, Secret):
            visit.cookies.append((SESSION_COOKIE, call.set_session.reveal()))
        elif call.set_session == "":
            visit.cookies.append((SESSION_COOKIE, None))
    return results


async def owner_answers(visit: Visit, *steps: Step) -> list[Any]:
    """The answers of the signed-in owner's ``steps`` for a page; a visitor without a full
    session is sent where it must go (sign-in, the code, the forced password change)."""
    try:
        return [answer for answer, _ in await invoke_all(visit, *steps)]
    except NotSignedIn:
        raise web.HTTPSeeOther("/signin") from None
    except SessionStageRefused as exc:
        where = STAGE_PAGES.get(str(exc.details.get("stage")), "/signin")
        raise web.HTTPSeeOther(where) from None


#: Where a session at an unfinished stage must go.
STAGE_PAGES = {"second-factor": "/signin/code", "change-password": "/account/password"}


# -- registering pages and forms ---------------------------------------------------------

Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]
ROUTES: list[Route] = []

PageHandler = Callable[[Visit], Awaitable[web.StreamResponse]]
FormHandler = Callable[[Visit, "MultiDictProxy[Any]"], Awaitable[Outcome]]


def page(path: str) -> Callable[[PageHandler], PageHandler]:
    """Register a GET page."""

    def register(handler: PageHandler) -> PageHandler:
        async def get(request: web.Request) -> web.StreamResponse:
            return await handler(Visit.of(request))

        get.__name__ = handler.__name__
        ROUTES.append(("GET", path, get))
        return handler

    return register


def form(
    path: str, *, back: str, session: bool = False, keep: tuple[str, ...] = ()
) -> Callable[[FormHandler], FormHandler]:
    """Register a POST form: CSRF checked, sent once, errors carried to ``back``.

    ``session``: the form belongs to a signed-in owner (the session's CSRF token);
    ``keep``: the fields to fill in again after an error (never secrets).
    """

    def register(handler: FormHandler) -> FormHandler:
        async def post(request: web.Request) -> web.StreamResponse:
            visit = Visit.of(request)
            data = await request.post()
            if not visit.csrf_ok(str(data.get("csrf", "")), session=session):
                log.info("portal: %s refused (CSRF token missing or wrong)", path)
                return error_page(visit, explain({"code": "csrf-refused"}), 403)
            once = str(data.get("once", ""))[:64] or secrets.token_urlsafe(16)

            async def run() -> Outcome:
                try:
                    return await handler(visit, data)
                except (NotSignedIn, SessionStageRefused) as exc:
                    where = {
                        "second-factor": "/signin/code",
                        "change-password": "/account/password",
                    }.get(str(exc.details.get("stage")), "/signin")
                    return Outcome(where, (flash(visit, error=error_document(exc)),))
                except MailprovError as exc:
                    values = {k: str(data.get(k, "")) for k in keep}
                    return Outcome(back, (flash(visit, error=error_document(exc), values=values),))

            outcome = await visit.portal.run_once(f"{visit.form_cookie}|{path}|{once}", run)
            return redirect(visit, outcome)

        post.__name__ = handler.__name__
        ROUTES.append(("POST", path, post))
        return handler

    return register


def local_path(target: str, default: str = "/") -> str:
    """``target`` if it is a path on this site (no scheme, no host, no backslash), else default."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
