"""`python -m autopeft ...` runs the `autopeft` command."""

from autopeft.cli import app

if __name__ == "__main__":  # importing the module (pkgutil.walk_packages in test_optional) runs nothing
    app()
