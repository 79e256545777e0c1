"""``python -m lvo_core``: see :mod:`lvo_core.cli`. Says it is starting before torch loads (a few seconds)."""

import sys

if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    print(f"lvo_core {sys.argv[1]}: loading torch and diffusers …", file=sys.stderr, flush=True)

from .cli import main  # noqa: E402

sys.exit(main())
