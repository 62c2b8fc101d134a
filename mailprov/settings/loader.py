"""Loading the site config: find the file, layer the values, check each one, record its origin.

Layers, lowest first: built-in defaults < the TOML file < ``MAILPROV_<SECTION>_<KEY>``
environment variables < command-line flags. ``config show --origin`` prints
the layer each value came from.

The config file is the first of:

1. ``--config FILE`` (an error if FILE does not exist);
2. the ``MAILPROV_CONFIG`` environment variable (likewise);
3. ``./mailprov.toml`` in the current directory;
4. ``/etc/mailprov/mailprov.toml``.

If none exists, only defaults, environment and flags apply. Relative paths in
the file (and ``sqlite:///relative.sqlite`` store URLs) are relative to the
file's own folder, so a site folder can be moved as a whole.

Every value from every layer is checked here, once, against its field's type
(:mod:`mailprov.settings.kinds`), then the rules that tie settings together
(:mod:`mailprov.settings.consistency`) run. A refusal is :class:`ConfigInvalid`
naming the setting, the layer it came from (with the file's line number) and
what to write instead. Code that receives a :class:`SiteConfig` trusts it.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from mailprov.errors import ConfigInvalid
from mailprov.settings import checks, consistency
from mailprov.settings.checks import Invalid, Range, Rule
from mailprov.settings.sections import SiteConfig

CONFIG_ENV = "MAILPROV_CONFIG"
CONFIG_NAME = "mailprov.toml"
SYSTEM_CONFIG = Path("/etc/mailprov/mailprov.toml")
#: Settings that global flags set, for naming the flag in an error.
FLAG_NAMES = {"store.url": "--store"}
_SHOWN_MAX = 80


@cache
def section_types() -> dict[str, type]:
    """The config sections (dataclass-typed fields of SiteConfig), in order."""
    hints = typing.get_type_hints(SiteConfig)
    return {name: tp for name, tp in hints.items() if isinstance(tp, type) and is_dataclass(tp)}


@cache
def field_types(section: type) -> dict[str, Any]:
    """A section's field types, with their ``Annotated`` rules."""
    return typing.get_type_hints(section, include_extras=True)


def find_config_file(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> Path | None:
    """The config file to use, following the documented lookup order."""
    for given, origin in ((explicit, "--config"), (env.get(CONFIG_ENV), CONFIG_ENV)):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise ConfigInvalid(
                    f"config file {path} (from {origin}) does not exist",
                    hint="create it with 'mailprov init --dir DIR', or fix the path",
                )
            return _safe_config_path(path.resolve(), origin)
    for candidate in (Path.cwd() / CONFIG_NAME, SYSTEM_CONFIG):
        if candidate.is_file():
            return _safe_config_path(candidate.resolve(), "lookup")
    return None


def _safe_config_path(path: Path, origin: str) -> Path:
    """The config file's path goes into the systemd units: it must be a safe path too."""
    try:
        checks.server_path(str(path), Path("/"))
    except Invalid as exc:
        raise ConfigInvalid(
            f"config file {str(path)[:200]!r} (from {origin}): {exc.why}",
            hint="the units deploy writes name this file: " + (exc.hint or ""),
            setting="config_file",
        ) from None
    return path


def _read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigInvalid(
            f"cannot read config file {path}: {exc.strerror}",
            hint="check the path and its permissions",
        ) from None
    except UnicodeDecodeError:
        raise ConfigInvalid(f"config file {path} is not UTF-8 text") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(
            f"config file {path} is not valid TOML: {exc}",
            hint="fix the line named; see configs/example.toml for the format",
        ) from None


_HEADER_RE = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(?:#.*)?")


def line_of(text: str, section: str, key: str) -> int | None:
    """The line where ``key = `` is set inside ``[section]`` (or as ``section.key =``)."""
    current = None
    own = re.compile(rf"\s*{re.escape(key)}\s*=")
    dotted = re.compile(rf"\s*{re.escape(section)}\s*\.\s*{re.escape(key)}\s*=")
    for number, line in enumerate(text.split("\n"), 1):
        header = _HEADER_RE.fullmatch(line)
        if header:
            current = header.group(1)
        elif (current == section and own.match(line)) or (current is None and dotted.match(line)):
            return number
    return None


def shown(dotted: str, value: object) -> str:
    """A value as an error shows it: cut short, escaped, and never a database password."""
    if dotted == "store.url" and isinstance(value, str):
        try:
            # Lazy: SQLAlchemy is heavy, and every command module loads settings at import.
            from sqlalchemy.engine import make_url  # noqa: PLC0415  (lazy: heavy)

            value = make_url(value).render_as_string(hide_password=True)
        except Exception:
            return "(not shown)"
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 4] + "...'"


def refusal(dotted: str, origin: str, value: object, exc: Invalid) -> ConfigInvalid:
    """The ConfigInvalid for one refused value: setting, layer, value, why, what to do."""
    where = {"default": "the default"}.get(origin, origin)
    hint = exc.hint or "fix the value"
    if origin.startswith("file "):
        hint += f" (in {origin.removeprefix('file ').split(',')[0]})"
    elif origin.startswith("env "):
        hint += f" (in the environment variable {origin.removeprefix('env ')})"
    elif origin.startswith("flag"):
        hint += f" (given by {origin.removeprefix('flag').strip() or 'a flag'})"
    return ConfigInvalid(
        f"{dotted} ({where}) = {shown(dotted, value)}: {exc.why}",
        hint=hint,
        setting=dotted,
        origin=origin,
    )


def _unwrap(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """(base type, Annotated metadata)."""
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return base, tuple(meta)
    return tp, ()


def _convert(value: Any, tp: Any) -> Any:  # noqa: PLR0911, PLR0912  (a branch per type)
    """``value`` as type ``tp`` (environment and flag strings are converted), or Invalid."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [t for t in typing.get_args(tp) if t is not type(None)]
        return _convert(value, options[0])
    from_text = isinstance(value, str) and tp is not str and origin is not Literal
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text and re.fullmatch(r"-?[0-9]+", value.strip(" ")):
            return int(value)
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_text and re.fullmatch(r"-?[0-9]+(?:\.[0-9]*)?", value.strip(" ")):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, str):
            for choice in choices:
                if value.lower() == str(choice).lower():
                    return choice
        raise Invalid("not one of " + ", ".join(choices), hint="use one of: " + ", ".join(choices))
    type_name = getattr(tp, "__name__", str(tp))
    raise Invalid(
        f"must be {type_name}, not {type(value).__name__}",
        hint=f"write a {type_name} value",
    )


def check_value(value: Any, tp: Any, base_dir: Path) -> Any:
    """Convert and check one value against its field type; return what to keep.

    Raises:
        Invalid: naming what is wrong (the caller names the setting).
    """
    base, meta = _unwrap(tp)
    if typing.get_origin(base) is list:
        (item_type,) = typing.get_args(base)
        if isinstance(value, str):  # environment or flag: comma-separated
            value = [v.strip(" ") for v in value.split(",") if v.strip(" ")]
        if not isinstance(value, list):
            raise Invalid(f"must be a list, not {type(value).__name__}", hint='e.g. ["a", "b"]')
        out = []
        for position, item in enumerate(value, 1):
            try:
                out.append(check_value(item, item_type, base_dir))
            except Invalid as exc:
                raise Invalid(f"item {position} ({shown('', item)}): {exc.why}", exc.hint) from None
        return out
    if isinstance(value, str):
        checks.plain_text(value)
    converted = _convert(value, base)
    for rule in meta:
        if isinstance(rule, Rule) and not (rule.optional and converted == ""):
            converted = rule.check(converted, base_dir)
        elif isinstance(rule, Range):
            checks.check_range(converted, rule)
    return converted


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> SiteConfig:
    """Build the frozen SiteConfig from defaults, file, environment and flags.

    Args:
        config_file: ``--config``, if given.
        env: the environment (``os.environ`` when None).
        flags: ``{"section.key": value}`` from command-line flags; None values are ignored.

    Raises:
        ConfigInvalid: naming the setting, where its value came from, and what is wrong.
    """
    env = os.environ if env is None else env
    path = find_config_file(config_file, env)
    text, data = _read_toml(path) if path else ("", {})
    base_dir = path.parent if path else Path.cwd()
    sections = section_types()
    where_file = str(path) if path else ""

    unknown_sections = sorted(set(data) - set(sections))
    if unknown_sections:
        raise ConfigInvalid(
            f"{where_file}: unknown section [{unknown_sections[0]}]",
            hint="known sections: " + ", ".join(sections),
        )
    origins: dict[str, str] = {}
    built: dict[str, Any] = {}
    for name, section_type in sections.items():
        hints = field_types(section_type)
        values: dict[str, Any] = {}
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigInvalid(f"{where_file}: [{name}] must be a table")
        known = [f.name for f in fields(section_type)]
        for key in sorted(set(raw) - set(known)):
            line = line_of(text, name, key)
            raise ConfigInvalid(
                f"{where_file}{f', line {line}' if line else ''}: unknown setting '{name}.{key}'",
                hint=f"known settings in [{name}]: " + ", ".join(sorted(known)),
            )
        for key in known:
            dotted = f"{name}.{key}"
            origins[dotted] = "default"
            env_name = f"MAILPROV_{name}_{key}".upper()
            for layer_value, origin in (
                (raw.get(key), f"file {where_file}"),
                (env.get(env_name), f"env {env_name}"),
            ):
                if layer_value is not None:
                    values[key] = _checked(
                        layer_value, hints[key], dotted, origin, base_dir, text, name, key
                    )
                    origins[dotted] = origin
        built[name] = section_type(**values)
    config = SiteConfig(**built, config_file=path, base_dir=base_dir, origins=origins)
    return override(config, flags or {}, text=text)


def _checked(
    value: Any,
    tp: Any,
    dotted: str,
    origin: str,
    base_dir: Path,
    text: str,
    section: str,
    key: str,
) -> Any:
    try:
        return check_value(value, tp, base_dir)
    except Invalid as exc:
        if origin.startswith("file "):
            line = line_of(text, section, key)
            origin += f", line {line}" if line else ""
        raise refusal(dotted, origin, value, exc) from None


def override(
    config: SiteConfig,
    flags: Mapping[str, Any],
    *,
    flag_names: Mapping[str, str] | None = None,
    text: str | None = None,
) -> SiteConfig:
    """``config`` with command-line ``flags`` (``{"section.key": value}``) on top, all checked.

    The rules that tie settings together run on the result, so a flag cannot make
    a config that the file could not.

    Args:
        flag_names: the flag that set each setting (``{"relay.listen": "--listen"}``), for errors.

    Raises:
        ConfigInvalid: naming the setting and the flag.
    """
    names = {**FLAG_NAMES, **(flag_names or {})}
    origins = dict(config.origins)
    sections = section_types()
    changed: dict[str, dict[str, Any]] = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        name, _, key = dotted.partition(".")
        hints = field_types(sections[name])
        origin = f"flag {names.get(dotted, '')}".rstrip()
        changed.setdefault(name, {})[key] = _checked(
            value, hints[key], dotted, origin, config.base_dir, "", name, key
        )
        origins[dotted] = "flag"
    for name, values in changed.items():
        config = replace(config, **{name: replace(getattr(config, name), **values)})
    config = _resolve_store_url(replace(config, origins=origins))
    try:
        consistency.check(config)
    except consistency.Inconsistent as exc:
        origin = config.origins.get(exc.dotted, "default")
        if origin == "flag":
            origin = f"flag {names.get(exc.dotted, '')}".rstrip()
        if origin.startswith("file ") and config.config_file is not None:
            section, _, key = exc.dotted.partition(".")
            file_text = config.config_file.read_text("utf-8") if text is None else text
            line = line_of(file_text, section, key)
            origin += f", line {line}" if line else ""
        raise refusal(exc.dotted, origin, exc.value, exc) from None
    return config


def _resolve_store_url(config: SiteConfig) -> SiteConfig:
    """Make a relative ``sqlite:///file`` URL absolute against the config's folder."""
    url = config.store.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        path, sep, query = rest.partition("?")
        if path and path != ":memory:":
            from_file = config.origins.get("store.url", "").startswith("file")
            base = config.base_dir if from_file else Path.cwd()
            url = prefix + str((base / path).resolve()) + sep + query
            return replace(config, store=replace(config.store, url=url))
    return config


def as_dict(config: SiteConfig) -> dict[str, dict[str, Any]]:
    """The settings as plain nested dicts, section by section."""
    out: dict[str, dict[str, Any]] = {}
    for name in section_types():
        section = getattr(config, name)
        out[name] = {f.name: getattr(section, f.name) for f in fields(section)}
    return out
