"""``python -m lvo_core``: see :mod:`lvo_core.cli`."""

import sys

from .cli import main

sys.exit(main())
