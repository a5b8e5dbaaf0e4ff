"""SIGINT and SIGTERM as a flag that is raised only where it is safe to.

The CLI installs the handler. A signal that arrives while the main thread is inside `deferred()`
(a page's transaction and the counters that must match it, the run's record) only sets the flag;
`Interrupted` is raised as the outermost such block ends, so no database call is ever cut in
two. Anywhere else (waiting for the network, between pages) it is raised at once, so a run stops
within a moment of the signal. A second signal ends the process at once.
"""

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from archiver.errors import Interrupted


class State:
    signum: int | None = None  # the first signal received
    raised = False  # Interrupted has been raised for it
    depth = 0  # nested deferred() blocks of the main thread


def install() -> None:
    """First SIGTERM/SIGINT: interrupt the run at the next safe point; second: exit now."""
    State.signum, State.raised, State.depth = None, False, 0

    def handler(signum: int, _frame: Any) -> None:
        if State.signum is not None:
            os._exit(128 + signum)
        State.signum = signum
        if State.depth == 0:
            State.raised = True
            raise Interrupted(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """A block a signal must not cut: it is acted on when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    State.depth += 1
    try:
        yield
    finally:
        State.depth -= 1
    if State.depth == 0 and State.signum is not None and not State.raised:
        State.raised = True
        raise Interrupted(State.signum)
