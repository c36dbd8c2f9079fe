"""Defaults for repeated options: ``JPKI_*`` environment variables, then a TOML file.

The file is ``$JPKI_CONFIG`` if set, else ``$XDG_CONFIG_HOME/jpki/config.toml`` (by default
``~/.config/jpki/config.toml``); it is optional. A value given on the command line always
wins; an environment variable beats the file. Relative paths in the file are relative to
the file's directory. Keys (docs/cli.md#configuration)::

    trust = ["/etc/jpki/roots"]        # --trust: CA files or directories
    crl_dir = "/var/lib/jpki/crl"      # revocation check --crl-dir
    store = "/var/lib/jpki/rev.sqlite" # --store
    reader = "Sony FeliCa"             # --reader, when no --sim/--bridge is named
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jpki._files import InputFileError, read_regular_file
from jpki.errors import UsageError

#: setting name → (environment variable, a list of paths?, a path?)
SETTINGS: dict[str, tuple[str, bool, bool]] = {
    "trust": ("JPKI_TRUST", True, True),
    "crl_dir": ("JPKI_CRL_DIR", False, True),
    "store": ("JPKI_STORE", False, True),
    "reader": ("JPKI_READER", False, False),
}
MAX_CONFIG_FILE = 1024 * 1024


@dataclass(frozen=True)
class Setting:
    """One effective default and where it came from (``env JPKI_X``, the file, or unset)."""

    name: str
    value: str | tuple[str, ...] | None
    source: str


def config_path() -> Path:
    """Where the configuration file is looked for (it need not exist)."""
    explicit = os.environ.get("JPKI_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "jpki" / "config.toml"


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        if os.environ.get("JPKI_CONFIG"):  # named explicitly: its absence is a mistake
            raise UsageError(f"JPKI_CONFIG names {path}, which does not exist")
        return {}
    try:
        data = tomllib.loads(read_regular_file(path, max_bytes=MAX_CONFIG_FILE).decode("utf-8"))
    except InputFileError as exc:
        raise UsageError(f"configuration file: {exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"configuration file {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:  # a misspelt key would otherwise be silently ignored
        raise UsageError(
            f"configuration file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(SETTINGS)}"
        )
    return data


def _from_file(name: str, raw: object, path: Path) -> str | tuple[str, ...]:
    _env, is_list, is_path = SETTINGS[name]

    def one(v: object) -> str:
        if not isinstance(v, str) or not v or "\x00" in v:
            raise UsageError(f"configuration file {path}: {name} must be a non-empty string")
        return str(path.parent / Path(v).expanduser()) if is_path else v

    if is_list:
        items = raw if isinstance(raw, list) else [raw]
        return tuple(one(v) for v in items)
    return one(raw)


def settings() -> dict[str, Setting]:
    """Every setting's effective value and source."""
    path = config_path()
    data = _read_file(path)
    out: dict[str, Setting] = {}
    for name, (env, is_list, _is_path) in SETTINGS.items():
        value = os.environ.get(env)
        if value:
            v: str | tuple[str, ...] = (
                tuple(p for p in value.split(os.pathsep) if p) if is_list else value
            )
            out[name] = Setting(name, v, f"env {env}")
        elif name in data:
            out[name] = Setting(name, _from_file(name, data[name], path), f"file {path}")
        else:
            out[name] = Setting(name, None, "unset")
    return out


def setting(name: str) -> str | tuple[str, ...] | None:
    """The effective default for ``name`` (None when unset)."""
    return settings()[name].value


def default(name: str) -> Callable[[], Any]:
    """A click ``default=`` callable reading the setting when the option is not given."""

    def get() -> Any:
        value = setting(name)
        if SETTINGS[name][1]:
            return value or ()
        return value

    return get
