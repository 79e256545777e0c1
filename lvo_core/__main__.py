"""``python -m lvo_core``: see :mod:`lvo_core.cli`. The package says it is starting before torch loads."""

import sys

from .cli import main

sys.exit(main())
