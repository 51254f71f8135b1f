"""``python -m nas``: the same as the ``nas`` command."""

import sys

from nas.cli.main import main

sys.exit(main())
