"""Command groups whose commands are imported only when they run.

`autopeft --help` lists every command without importing one (torch, optuna, ray and transformers
stay out); a command's module is imported when that command is invoked or asked for its own
`--help`. The listing's one-line help is each command's docstring (or its Typer group's `help=`),
read from the module's source with `ast`, so the text lives in one place.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import click
import typer
import typer.main
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """A command (`attr` names its function) or a sub-group (`attr` names its `typer.Typer`) in `module`."""

    module: str
    attr: str


class LazyGroup(TyperGroup):
    """A `TyperGroup` whose `lazy` commands register on `source` when their module is imported.

    Subclass it per group and set `lazy` and `source` (the Typer app the modules register on).
    """

    lazy: ClassVar[dict[str, LazyCommand]] = {}
    source: ClassVar[typer.Typer | None] = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Stand-ins carrying the one-line help, listed first, so --help and "did you mean" know every command.
        stand_ins = {name: _StandIn(name, help=_help_of(entry), callback=None)
                     for name, entry in self.lazy.items() if name not in self.commands}
        self.commands = {**stand_ins, **self.commands}

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and isinstance(self.commands.get(args[0]), _StandIn):
            self.commands[args[0]] = self._load(args[0])
        return super().resolve_command(ctx, args)

    def _load(self, name: str) -> click.Command:
        """Import the module that defines `name` and build its click command from what it registered."""
        entry = self.lazy[name]
        importlib.import_module(entry.module)
        if "optuna" in sys.modules:  # the CLI reports progress itself
            sys.modules["optuna"].logging.set_verbosity(sys.modules["optuna"].logging.WARNING)
        source = self.source
        assert source is not None, f"{type(self).__name__}.source is not set"
        for info in source.registered_commands:
            if (info.name or typer.main.get_command_name(info.callback.__name__)) == name:
                return typer.main.get_command_from_info(
                    info, pretty_exceptions_short=source.pretty_exceptions_short,
                    rich_markup_mode=source.rich_markup_mode)
        for group in source.registered_groups:
            if group.name == name:
                return typer.main.get_group_from_info(
                    group, pretty_exceptions_short=source.pretty_exceptions_short,
                    suggest_commands=source.suggest_commands, rich_markup_mode=source.rich_markup_mode)
        raise LookupError(f"{entry.module} registers no command {name!r} on {source.info.name or 'its app'}")


class _StandIn(TyperCommand):
    """A lazy command before its module is imported: its name and help, nothing to run."""


@functools.cache
def _help_of(entry: LazyCommand) -> str:
    """The docstring of function `entry.attr`, or the `help=` of the `typer.Typer(...)` assigned to it."""
    spec = importlib.util.find_spec(entry.module)
    assert spec is not None and spec.origin, f"no module {entry.module}"
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), spec.origin)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry.attr:
            return ast.get_docstring(node) or ""
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and any(isinstance(t, ast.Name) and t.id == entry.attr for t in node.targets)):
            for keyword in node.value.keywords:
                if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    return ""
