"""`python -m gridpipe.worker JOB_FILE`."""

import sys

from gridpipe.worker.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
