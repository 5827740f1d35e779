"""`python -m autopeft.cli.main`: the same as the `autopeft` command."""

from autopeft.cli import app

if __name__ == "__main__":
    app()
