"""``python -m equinlp ...``: the same command line as ``equinlp ...``."""

import sys

from equinlp.cli import main

sys.exit(main())
