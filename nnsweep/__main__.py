"""``python -m nnsweep`` is the ``nnsweep`` command."""

import sys

from nnsweep.cli.main import main

sys.exit(main())
