"""``python -m restorer``: the ``restorer`` command, also as ``accelerate launch -m restorer restore ...``."""

import sys

from restorer.cli import main

if __name__ == "__main__":
    sys.exit(main())
