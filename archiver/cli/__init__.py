"""The command line, a thin layer over archiver.Archive: options in, one call, output and exit codes out.

main.py holds the group, the shared options and the one place errors become exit codes;
sync.py, read.py, view.py and demo.py hold the commands.
"""

import sys

# `import httpx` also imports httpx's own command line, and with it rich and pygments whenever they
# are installed: 50 ms and 2.5 MB of every sync's start-up, for a tool archiver never runs. A None
# entry makes that optional import fail as if they were missing (httpx.main becomes httpx's stub).
if "httpx" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]

from archiver.cli import audit, demo, read, routes, sync, view  # noqa: F401  (they register their commands)
from archiver.cli.main import cli

__all__ = ["cli"]
