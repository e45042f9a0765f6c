"""``python -m probpose``: the same as the ``probpose`` console script."""

import sys

from probpose.cli import main

sys.exit(main())
