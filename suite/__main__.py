"""``python -m suite``: the command line (``suite.cli``)."""

from __future__ import annotations

import sys

from suite.cli import main

if __name__ == "__main__":
    # Spawned worker processes import this module as ``__mp_main__``; only the
    # real entry point runs the command line.
    sys.exit(main())
