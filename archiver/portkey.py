"""Portkey: where the gateway is and how to route through it (its x-portkey-* headers)."""

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from archiver.errors import ConfigError
from archiver.log import redact

if TYPE_CHECKING:  # `archiver --help` imports this module: httpx only when a route is used
    from archiver.client import Settings

HOSTED = "https://api.portkey.ai/v1"

# Field -> (environment variable, header). Secrets come from the environment or arguments only.
VARIABLES = {
    "api_key": ("PORTKEY_API_KEY", "x-portkey-api-key"),
    "virtual_key": ("PORTKEY_VIRTUAL_KEY", "x-portkey-virtual-key"),
    "provider": ("PORTKEY_PROVIDER", "x-portkey-provider"),
    "provider_api_key": ("PORTKEY_PROVIDER_API_KEY", "authorization"),
    "config": ("PORTKEY_CONFIG", "x-portkey-config"),
    "custom_host": ("PORTKEY_CUSTOM_HOST", "x-portkey-custom-host"),
}
ALIASES = {"PORTKEY_PROVIDER_VIRTUAL_KEY": "virtual_key"}  # the name in Portkey's own examples
SECRETS = ("api_key", "virtual_key", "provider_api_key", "config")
PLACEHOLDER = "replace-me"  # portkey.env.example's values: pk-replace-me, vk-replace-me, ...


@dataclass(frozen=True, repr=False)
class Portkey:
    """A route through Portkey's gateway: its base URL and the headers that pick the provider.

    Args:
        api_key: the Portkey API key (x-portkey-api-key).
        virtual_key: a virtual key naming a provider and its credentials (x-portkey-virtual-key).
        provider: a provider name such as "openai", or "@provider-slug" (x-portkey-provider).
        provider_api_key: the provider's own key, sent as Authorization: Bearer (with `provider`).
        config: a saved config's id, or a config as JSON text or a dict (x-portkey-config).
        custom_host: the provider's base URL, for a self-hosted provider (x-portkey-custom-host).
        base_url: the gateway's base URL; a self-hosted gateway is http://localhost:8787/v1.
        ca_bundle: a PEM file of a private CA to trust (TLS is always verified).

    One of virtual_key, provider or config is required, and api_key is for Portkey's hosted API
    (*.portkey.ai); a self-hosted gateway may do without it.
    Secrets never appear in repr() or in errors; `archiver.log_filter()` keeps them out of the logs
    of handlers it is added to (the command line adds it to its own).

    Raises:
        ConfigError: a required setting is missing or still holds portkey.env.example's placeholder,
            a value cannot go into an HTTP header, or base_url is not an http(s) URL without credentials.
    """

    api_key: str | None = None
    virtual_key: str | None = None
    provider: str | None = None
    provider_api_key: str | None = None
    config: str | dict[str, Any] | None = None
    custom_host: str | None = None
    base_url: str = HOSTED
    ca_bundle: str | None = field(default=None)

    def __post_init__(self) -> None:
        if not re.match(r"https?://[^/@\s]+(/|$)", self.base_url):
            raise ConfigError("PORTKEY_BASE_URL must be an http(s) URL without credentials")
        if isinstance(self.config, dict):
            object.__setattr__(self, "config", json.dumps(self.config))
        for name, (var, _) in VARIABLES.items():
            value = getattr(self, name)
            if value is not None and (not value.isprintable() or not value.isascii()):
                raise ConfigError(f"{var} holds characters that cannot go into an HTTP header")
        placeholders = [
            var for name, (var, _) in VARIABLES.items() if PLACEHOLDER in (getattr(self, name) or "")
        ]
        if placeholders:
            raise ConfigError(
                f"{' and '.join(placeholders)} still {'holds' if len(placeholders) == 1 else 'hold'} the "
                f"placeholder of portkey.env.example ({PLACEHOLDER}): put your own values in portkey.env"
            )
        hosted = (urlsplit(self.base_url).hostname or "").endswith("portkey.ai")
        missing = ["PORTKEY_API_KEY"] if hosted and not self.api_key else []
        if not (self.virtual_key or self.provider or self.config):
            routing = (
                "PORTKEY_VIRTUAL_KEY (or PORTKEY_PROVIDER_VIRTUAL_KEY), PORTKEY_PROVIDER or PORTKEY_CONFIG"
            )
            missing.append(f"one of {routing}")
        if missing:
            raise ConfigError(
                f"Portkey is not configured: set {' and '.join(missing)} (see archiver sync --help)"
            )
        redact.secrets.update(self.secrets())  # before any request or log line

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Portkey":
        """The route from PORTKEY_* variables (an empty variable counts as unset); keyword
        arguments override them. Raises ConfigError as the constructor does."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {name: env.get(var) or None for name, (var, _) in VARIABLES.items()}
        for var, name in ALIASES.items():
            values[name] = values[name] or env.get(var) or None
        values["base_url"] = env.get("PORTKEY_BASE_URL") or HOSTED
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})

    def headers(self) -> dict[str, str]:
        """The request headers (they hold secrets: never log them)."""
        out = {}
        for name, (_, header) in VARIABLES.items():
            value = getattr(self, name)
            if value:
                out[header] = f"Bearer {value}" if header == "authorization" else value
        return out

    def settings(self, **policy: Any) -> "Settings":
        """The HTTP client's settings for this route; `policy`: Settings' retry and time fields.
        Raises nothing: the constructor checked the route."""
        from archiver.client import Settings

        return Settings(base_url=self.base_url, headers=self.headers(), ca_bundle=self.ca_bundle, **policy)

    def secrets(self) -> list[str]:
        """The secret values this route holds (what the log redaction replaces)."""
        return [getattr(self, name) for name in SECRETS if getattr(self, name)]

    @property
    def provider_name(self) -> str:
        """The provider the routing names, for the archive's `provider` column; the gateway's
        x-portkey-provider answer header wins when it sends one."""
        if self.provider and not self.provider.startswith("@"):
            return self.provider
        try:
            config = json.loads(self.config) if isinstance(self.config, str) else None
        except ValueError:
            return "unknown"  # a saved config's id
        named = config.get("provider") if isinstance(config, dict) else None
        return named if isinstance(named, str) and named else "unknown"

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                shown.append(f"{f.name}={'***' if f.name in SECRETS else repr(value)}")
        return f"Portkey({', '.join(shown)})"
