"""`python -m autopeft ...` runs the `autopeft` command."""

if __name__ == "__main__":
    from autopeft.console import main

    main()
