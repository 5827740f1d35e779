"""`python -m autopeft.cli.main`: the same as the `autopeft` command (`python -m autopeft` starts faster to
answer Ctrl-C: this path imports every command first)."""

from autopeft.cli import app  # noqa: F401  (kept importable as before)

if __name__ == "__main__":
    from autopeft.console import main

    main()
