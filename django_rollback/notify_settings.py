"""DJANGO_ROLLBACK["NOTIFY"], read and checked: where notifications go, and which."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from . import signals
from .conf import get_setting

SETTING = 'DJANGO_ROLLBACK["NOTIFY"]'
KEYS = ("EMAILS", "WEBHOOKS", "TIMEOUT", "BASE_URL", "EVENTS")
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class NotifyConfig:
    emails: tuple[str, ...] = ()
    to_admins: bool = False  # EMAILS = "ADMINS": Django's mail_admins()
    webhooks: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    base_url: str = ""
    events: frozenset[str] = frozenset(signals.EVENTS)

    @property
    def active(self) -> bool:
        return bool(self.emails or self.to_admins or self.webhooks)


def config() -> NotifyConfig:
    """The setting, validated; ImproperlyConfigured says in one line what is wrong."""
    value = get_setting("NOTIFY")
    if value is None:
        return NotifyConfig()
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{SETTING} must be a dict, not {type(value).__name__}.")
    unknown = sorted(str(key) for key in value if key not in KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{SETTING} has unknown key(s) {', '.join(unknown)}: use {', '.join(KEYS)}."
        )
    emails, to_admins = _emails(value.get("EMAILS"))
    return NotifyConfig(
        emails=emails,
        to_admins=to_admins,
        webhooks=_webhooks(value.get("WEBHOOKS")),
        timeout=_timeout(value.get("TIMEOUT", DEFAULT_TIMEOUT)),
        base_url=_base_url(value.get("BASE_URL")),
        events=_events(value.get("EVENTS")),
    )


def _emails(value: Any) -> tuple[tuple[str, ...], bool]:
    if value is None:
        return (), False
    if value == "ADMINS":
        return (), True
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(
            f'{SETTING}["EMAILS"] must be a list of addresses or "ADMINS", not {value!r}.'
        )
    bad = [item for item in value if not isinstance(item, str) or "@" not in item]
    if bad:
        raise ImproperlyConfigured(f'{SETTING}["EMAILS"] has invalid address(es): {bad!r}.')
    return tuple(value), False


def _webhooks(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(f'{SETTING}["WEBHOOKS"] must be a list of URLs, not {value!r}.')
    bad = [url for url in value if not _is_http_url(url)]
    if bad:
        raise ImproperlyConfigured(
            f'{SETTING}["WEBHOOKS"] has URL(s) that are not http(s)://: {bad!r}.'
        )
    return tuple(value)


def _timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ImproperlyConfigured(
            f'{SETTING}["TIMEOUT"] must be a number of seconds above 0, not {value!r}.'
        )
    return float(value)


def _base_url(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not _is_http_url(value):
        raise ImproperlyConfigured(
            f'{SETTING}["BASE_URL"] must be an http(s):// URL such as "https://ops.example.com", '
            f"not {value!r}."
        )
    return str(value).rstrip("/")


def _events(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset(signals.EVENTS)
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(
            f'{SETTING}["EVENTS"] must be a list of event names, not {value!r}.'
        )
    unknown = [name for name in value if name not in signals.EVENTS]
    if unknown:
        raise ImproperlyConfigured(
            f'{SETTING}["EVENTS"] has unknown event(s) {unknown!r}: use '
            f"{', '.join(signals.EVENTS)}."
        )
    return frozenset(value)


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))
