"""`jpki completion bash|zsh|fish`: print the shell completion script (click's)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

_SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(_SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; see docs/cli.md#shell-completion.

    \b
    bash: eval "$(jpki completion bash)"       (e.g. in ~/.bashrc)
    zsh:  eval "$(jpki completion zsh)"        (e.g. in ~/.zshrc)
    fish: jpki completion fish > ~/.config/fish/completions/jpki.fish
    """
    from jpki.cli import main

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"click has no completion for {shell}")
    click.echo(cls(main, {}, "jpki", "_JPKI_COMPLETE").source())


commands: list[click.Command] = [completion]
