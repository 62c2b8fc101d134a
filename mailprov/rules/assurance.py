"""Trust frameworks and their assurance levels (OpenID Connect for Identity Assurance).

The one home of the ordered level lists: the identity gate checks a token's level
against them, ``identity trust add-issuer`` and the ``[oidc]`` settings check a
configured minimum against them. Pure: no I/O.
"""

from __future__ import annotations

#: Assurance levels of each trust framework, lowest first.
FRAMEWORK_LEVELS: dict[str, tuple[str, ...]] = {
    "ru_esia": ("simplified", "standard", "confirmed"),
    "eidas": ("low", "substantial", "high"),
    "nist_800_63A": ("ial1", "ial2", "ial3"),
}
#: The minimum each framework needs by default ("fully verified" in the source documents).
DEFAULT_MIN_LEVEL = {"ru_esia": "confirmed", "eidas": "substantial", "nist_800_63A": "ial2"}


def framework_name(value: object) -> str | None:
    """``https://op/trust_framework/ru_esia`` or ``ru_esia`` -> ``ru_esia``; unknown -> None."""
    if not isinstance(value, str):
        return None
    name = value.rstrip("/").rsplit("/", 1)[-1]
    return name if name in FRAMEWORK_LEVELS else None
