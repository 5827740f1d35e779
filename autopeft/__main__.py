"""`python -m autopeft ...` runs the `autopeft` command."""

from autopeft.cli import app

if __name__ == "__main__":
    app()
