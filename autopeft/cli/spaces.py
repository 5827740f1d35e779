"""`autopeft spaces`: list the built-in search spaces, show one for a model."""

from __future__ import annotations

from enum import Enum

import typer
from rich.markup import escape
from rich.table import Table

from autopeft.cli.app import app, fail, print_json
from autopeft.cli.app import console as make_console
from autopeft.optional import ADAPTERS_EXTRA, adapters_available
from autopeft.search_spaces import (
    ModelError,
    SpaceError,
    builtin_spaces,
    load_config,
    load_space,
    read_space_file,
    structure_of,
)
from autopeft.search_spaces.families import adapters_only

spaces_app = typer.Typer(help="Search spaces: list them, or show one for a model.", invoke_without_command=True)
app.add_typer(spaces_app, name="spaces")


class Format(str, Enum):
    text = "text"
    json = "json"


@spaces_app.callback()
def list_spaces(ctx: typer.Context, format: Format = typer.Option(Format.text, "--format", help="text or json")):
    """List the built-in spaces (name, families, the extra a search needs, description)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = []
    for name in builtin_spaces():
        space = read_space_file(name)
        fams = list(dict.fromkeys(f for m in space.modules for f in m.families))  # llm-lora: lora once
        rows.append({"name": name, "families": fams, "extra": "adapters" if adapters_only(fams) else None,
                     "description": space.description})
    if format is Format.json:
        print_json(rows)
        return
    table = Table("space", "families", "needs", "description")
    for row in rows:
        table.add_row(escape(row["name"]), ", ".join(row["families"]),
                      escape(f"autopeft[{row['extra']}]") if row["extra"] else "-", escape(row["description"]))
    console = make_console()
    console.print(table)
    if any(row["extra"] for row in rows) and not adapters_available():
        console.print(f"spaces that need autopeft[adapters] can be shown here; searching them needs {ADAPTERS_EXTRA}",
                      markup=False)


@spaces_app.command("show")
def show(
    name: str = typer.Argument(..., help="Built-in space name or path to a space YAML file."),
    model: str = typer.Option(..., "--model", help="Hub name or a directory holding config.json (no weights needed)."),
    format: Format = typer.Option(Format.text, "--format", help="text or json"),
):
    """Dimensions, number of valid configurations and the parameter range of a space for a model."""
    try:
        structure = structure_of(load_config(model))
        space = load_space(name, structure)
    except (SpaceError, ModelError) as exc:
        fail(str(exc))
    (small_plan, small), (large_plan, large) = space.param_range()
    dims = {
        dim: (list(dist.choices) if hasattr(dist, "choices") else [dist.low, dist.high])
        for dim, dist in space.distributions().items()
    }
    info = {
        "space": space.name,
        "model": model,
        "model_type": structure.model_type,
        "num_layers": structure.num_layers,
        "stacks": [{"path": st.path, "layers": [st.first, st.first + st.num_layers - 1]} for st in structure.stacks],
        "base_params": structure.base_params,
        "num_dimensions": len(dims),
        "dimensions": dims,
        "num_configurations": space.num_configurations(),
        "num_valid_configurations": space.num_valid_configurations(),
        "min_params": small.params,
        "min_params_pct": small.pct,
        "min_plan": small_plan.summary(),
        "max_params": large.params,
        "max_params_pct": large.pct,
        "max_plan": large_plan.summary(),
        "extra": "adapters" if space.adapters_families() else None,
    }
    if format is Format.json:
        print_json(info)
        return
    console = make_console()
    layers = f"{structure.num_layers} layers"
    if structure.is_encoder_decoder:  # layers are numbered encoder first, then decoder
        layers += ": " + ", ".join(f"{st.path.split('.')[0]} {st.first}-{st.first + st.num_layers - 1}"
                                   for st in structure.stacks)
    console.print(f"[bold]{escape(space.name)}[/bold] on {escape(model)} ({escape(structure.model_type)}, {escape(layers)}, "
                  f"{structure.base_params:,} parameters)")
    console.print(space.description, markup=False)
    table = Table("dimension", "choices")
    for dim, choices in dims.items():
        table.add_row(escape(dim), "0/1" if choices == [0, 1] and dim.split(".")[-2] == "mask" else ", ".join(map(str, choices)))
    console.print(table)
    console.print(f"dimensions: {len(dims)}   valid configurations: {info['num_valid_configurations']:,}")
    console.print(f"smallest: {small.params:,} params ({small.pct:.4f}%)  {small_plan.summary()}", markup=False)
    console.print(f"largest:  {large.params:,} params ({large.pct:.4f}%)  {large_plan.summary()}", markup=False)
    if space.adapters_families() and not adapters_available():
        console.print(f"{', '.join(space.adapters_families())}: built by AdapterHub adapters, not installed here; "
                      f"searching this space needs {ADAPTERS_EXTRA}", markup=False)
