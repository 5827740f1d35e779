"""`python -m autopeft ...` runs the `autopeft` command."""

from autopeft.cli import app

app()
