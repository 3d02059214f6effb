"""``python -m worker`` is the ``leadflow`` command."""

import sys

from worker.cli import main

sys.exit(main())
