"""Where the `crq` commands print: `out` (answers) and `err` (one-line failures).

Commands print through the module (`console.out.print(...)`, never `from ... import out`), so a
test can give them a console of its own width.
"""

from __future__ import annotations

import sys

from rich.console import Console

# Piped into a file or a CI log, rich would assume 80 columns and crush the tables.
_PIPED_WIDTH = None if sys.stdout.isatty() else 120
STATUS_PIPED_WIDTH = 200  # crq status has seven columns, one of them an error message
out = Console(highlight=False, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False, width=_PIPED_WIDTH)
