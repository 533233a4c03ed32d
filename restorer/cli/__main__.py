"""``python -m restorer.cli``: the ``restorer`` command."""

import sys

from restorer.cli.parser import main

if __name__ == "__main__":
    sys.exit(main())
