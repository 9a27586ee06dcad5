"""``python -m nnsweep`` is the ``nnsweep`` command."""

import sys

from .cli import main

sys.exit(main())
