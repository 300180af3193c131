"""`python -m gridpipe.payloads.ctapipe ACTION`."""

import sys

from gridpipe.payloads.ctapipe.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
