"""``python -m lvo_core``: see :mod:`lvo_core.cli`. Says what is starting before torch loads (seconds)."""

from .progress import announce_program

announce_program(__name__, __spec__)

from .cli import main  # noqa: E402

raise SystemExit(main())
