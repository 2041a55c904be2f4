"""``python -m tribert``: the ``tribert`` console script."""

import sys

from .cli import main

sys.exit(main())
