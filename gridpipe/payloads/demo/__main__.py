"""`python -m gridpipe.payloads.demo ACTION [options]`: run one step of the demo analysis."""

import sys

from gridpipe.payloads.demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
