"""``python -m mtsp …`` — the same as the ``mtsp`` command (mtsp.cli)."""
import sys

from .cli import main

sys.exit(main())
