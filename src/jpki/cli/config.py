"""`jpki config show`: the defaults taken from JPKI_* variables and the configuration file."""

from __future__ import annotations

import click

from jpki.cli import _config
from jpki.cli._common import emit, handle_errors, printable


@click.group("config")
def config_group() -> None:
    """Defaults from JPKI_* environment variables and ~/.config/jpki/config.toml."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def show(as_json: bool) -> None:
    """Show each default (trust, crl_dir, store, reader), its value and where it came from."""
    path = _config.config_path()
    found = _config.settings()
    data = {
        "config_file": str(path),
        "config_file_exists": path.exists(),
        "settings": {
            name: {
                "value": list(s.value) if isinstance(s.value, tuple) else s.value,
                "source": s.source,
                "environment_variable": _config.SETTINGS[name][0],
            }
            for name, s in found.items()
        },
    }

    def text() -> str:
        state = "" if path.exists() else " (not present)"
        lines = [f"config file: {printable(path)}{state}"]
        for name, s in found.items():
            if s.value is None:
                shown = "-"
            elif isinstance(s.value, tuple):
                shown = ", ".join(printable(v) for v in s.value)
            else:
                shown = printable(s.value)
            lines.append(f"{name:8} {shown}  [{printable(s.source)}]")
        return "\n".join(lines)

    emit(data, as_json, text)


commands: list[click.Command] = [config_group]
