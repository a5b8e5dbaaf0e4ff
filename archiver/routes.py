"""Routes: named ways through Portkey (one provider, account or key each), read from archiver.toml.

One archive holds every route's jobs. A job is keyed by its provider id, whichever route lists it;
job_routes records which routes list it. Coverage belongs to a route: each run syncs one route,
and its gaps, in-flight set, newest job and stop rule are reasoned over that route's jobs only (see
archiver/sync.py), so a job known through one route never stops another route's walk.

    [routes.openai]
    provider = "openai"
    provider_api_key_env = "OPENAI_API_KEY"   # secrets only by the name of the variable holding them
    base_url = "http://localhost:8787/v1"

Without a config file there is one route, `default`, from the PORTKEY_* variables, as before.
"""

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver.errors import ConfigError
from archiver.portkey import SECRETS, Portkey

DEFAULT = "default"
CONFIG_FILE = "archiver.toml"  # looked for in the working directory
NAME = re.compile(r"[a-z0-9_-]+")
PLAIN = ("base_url", "provider", "custom_host", "ca_bundle")  # settings written as they are
BY_NAME = {f"{name}_env": name for name in SECRETS}  # api_key_env = "PORTKEY_API_KEY", ...


@dataclass(frozen=True)
class Route:
    """A named route: what `archiver routes` lists and `--route NAME` selects.

    Args:
        name: lower-case letters, digits, "-" and "_" (`default` is the route from the environment).
        portkey: where the gateway is and how to route through it.

    Raises:
        ConfigError: the name is not of that form.
    """

    name: str
    portkey: Portkey

    def __post_init__(self) -> None:
        ensure_name(self.name)


def ensure_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ConfigError(f"route name {name!r} must be lower-case letters, digits, '-' or '_'")


def config_path(given: str | None, cwd: Path) -> Path | None:
    """The config file: `given` (--config, ARCHIVER_CONFIG), which must exist, or archiver.toml in
    `cwd` if there is one; None: no config file (one route from the environment)."""
    if given:
        path = Path(given)
        if not path.is_file():
            raise ConfigError(f"config file {given} does not exist (--config, ARCHIVER_CONFIG)")
        return path
    found = cwd / CONFIG_FILE
    return found if found.is_file() else None


def read_config(path: Path) -> dict[str, dict[str, str]]:
    """The routes a config file names, by name, in file order, each setting checked: a secret in
    clear text, an unknown setting or table, or a value that is not text is refused (ConfigError,
    one line)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it as TOML: {e}") from None
    extra = sorted(set(doc) - {"routes"})
    if extra:
        raise ConfigError(f"{path}: unknown table or setting {extra[0]!r} (only [routes.NAME] tables)")
    tables = doc.get("routes", {})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: name at least one route, as a [routes.NAME] table")
    return {name: route_settings(path, name, table) for name, table in tables.items()}


def route_settings(path: Path, name: str, table: Any) -> dict[str, str]:
    where = f"{path}: routes.{name}"
    if not NAME.fullmatch(name):
        raise ConfigError(f"{where}: a route name is lower-case letters, digits, '-' or '_'")
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of settings")
    for key, value in table.items():
        if key in SECRETS:
            raise ConfigError(
                f"{where}.{key} is a secret written in clear text: put it in an environment variable "
                f'and name that variable ({key}_env = "...")'
            )
        if key not in PLAIN and key not in BY_NAME:
            known = ", ".join((*PLAIN, *BY_NAME))
            raise ConfigError(f"{where}: unknown setting {key!r} (known: {known})")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.{key} must be a non-empty string")
    return dict(table)


def make_route(name: str, settings: Mapping[str, str], environ: Mapping[str, str]) -> Route:
    """The route from its checked settings, its secrets read from the variables they name.

    Raises ConfigError: a named variable is unset or empty, or Portkey refuses the settings."""
    values: dict[str, Any] = {k: v for k, v in settings.items() if k in PLAIN}
    for key, var in settings.items():
        if key in BY_NAME:
            if not environ.get(var):
                raise ConfigError(f"route {name}: {key} names {var}, which is not set")
            values[BY_NAME[key]] = environ[var]
    try:
        return Route(name, Portkey(**values))
    except ConfigError as e:
        raise ConfigError(f"route {name}: {e}") from None


def load_routes(
    path: Path | None, environ: Mapping[str, str], names: list[str] | None = None, **env_overrides: Any
) -> list[Route]:
    """The routes to sync: those of the config file at `path` (None: the one route `default` from
    the environment, `env_overrides` over it), in file order, or those `names` selects.

    Raises ConfigError: the file is refused, a selected name is not a route, or a selected route's
    settings are (routes not selected are not checked beyond the file's form)."""
    if path is None:
        known: dict[str, dict[str, str] | None] = {DEFAULT: None}
    else:
        known = dict(read_config(path))
    for name in names or []:
        if name not in known:
            where = f"in {path}" if path else "without a config file (only `default`)"
            raise ConfigError(f"no route {name!r} {where}; known: {', '.join(known)}")
    chosen = [n for n in known if not names or n in names]
    return [
        Route(n, Portkey.from_env(environ, **env_overrides))
        if known[n] is None
        else make_route(n, known[n] or {}, environ)
        for n in chosen
    ]


def configured_providers(path: Path | None) -> dict[str, str | None]:
    """The routes a config file names (without one: `default`) and the provider each sets, if any."""
    if path is None:
        return {DEFAULT: None}
    return {name: settings.get("provider") for name, settings in read_config(path).items()}
