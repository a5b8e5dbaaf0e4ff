"""The command line, a thin layer over archiver.Archive: options in, one call, output and exit codes out.

main.py holds the group, the shared options and the one place errors become exit codes;
sync.py, read.py, view.py and demo.py hold the commands.
"""

from archiver.cli import demo, read, sync, view  # noqa: F401  (they register their commands)
from archiver.cli.main import cli

__all__ = ["cli"]
