"""`python -m gridpipe` runs the command line."""

from gridpipe.cli.app import main

if __name__ == "__main__":
    main()
