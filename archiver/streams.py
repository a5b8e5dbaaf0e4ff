"""Iterators drained ahead of their consumer by background threads: how a walk fetches its next
pages while the writer writes, and how a parallel walk's segments share one writer."""

import queue
import threading
from collections.abc import Generator, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(eq=False)
class Stream:
    credit: threading.Semaphore
    stop: threading.Event


class Streams(Generic[K]):
    """Each started iterator is drained by its own daemon thread, at most `depth` items ahead of
    the consumer; `get` hands out their items in arrival order, tagged with the stream's key.

    An error is handed out as the stream's last item, to be raised in the consumer's thread.
    `stop` ends a stream before its next item (items of it still queued are dropped); `close`
    stops them all and waits for the items in progress (a request in flight, at most its timeout).
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.handoff: queue.SimpleQueue[tuple[K, Stream, bool, Any]] = queue.SimpleQueue()
        self.running: dict[K, Stream] = {}
        self.threads: list[threading.Thread] = []

    def start(self, key: K, items: Iterator[Any], stop: threading.Event | None = None) -> None:
        """Drain `items` in a new thread; `key` names its items (a stopped key may start again).
        `stop` is set when the stream stops: `items` may watch it to end a wait early."""
        stream = Stream(threading.Semaphore(self.depth), stop or threading.Event())
        thread = threading.Thread(target=self.produce, args=(key, stream, items), daemon=True)
        self.running[key] = stream
        self.threads.append(thread)
        thread.start()

    def produce(self, key: K, stream: Stream, items: Iterator[Any]) -> None:
        try:
            while stream.credit.acquire() and not stream.stop.is_set():
                try:
                    self.handoff.put((key, stream, True, next(items)))
                except StopIteration:
                    self.handoff.put((key, stream, False, None))
                    return
                except BaseException as e:  # handed to the consumer's thread as it is
                    self.handoff.put((key, stream, False, e))
                    return
        finally:
            if isinstance(items, Generator):
                items.close()  # streams it draws from stop too

    def get(self) -> tuple[K, bool, Any]:
        """The next (key, True, item), or (key, False, None) at a stream's end, or (key, False,
        error). Call it only while some stream is running."""
        while True:
            key, stream, ok, value = self.handoff.get()
            if self.running.get(key) is not stream:
                continue  # stopped: what it had queued is dropped
            if ok:
                stream.credit.release()
            else:
                del self.running[key]
            return key, ok, value

    def stop(self, key: K) -> None:
        stream = self.running.pop(key, None)
        if stream is not None:
            stream.stop.set()
            stream.credit.release()

    def close(self, timeout: float | None = None) -> None:
        """Stop every stream; wait for the items in progress, at most `timeout` seconds for each."""
        for key in list(self.running):
            self.stop(key)
        for thread in self.threads:
            thread.join(timeout)


ABANDON_AFTER = 0.5  # seconds an ending run waits for a request in flight before it leaves it


def ahead(items: Iterator[T], depth: int, abort: threading.Event | None = None) -> Generator[T, None, None]:
    """`items`, produced in a daemon thread at most `depth` items ahead of the caller.

    Depth 2 lets the thread send the next request as soon as a page arrives, before the caller
    (which holds the GIL while it writes) has taken it: a page's wait is not lengthened by a
    thread switch. Closing the iterator stops the thread and waits for the item in progress: the
    caller closes the HTTP client next. A signal that interrupts the wait for an item sets `abort`
    first: a fetch waiting to be tried again gives up, and a request in flight is waited for at
    most ABANDON_AFTER seconds (once `abort` is set nothing retries or logs it), so that an
    interrupted run is recorded within a second however slow the server.
    """
    streams: Streams[int] = Streams(depth)
    streams.start(0, items)
    try:
        while True:
            try:
                _, ok, value = streams.get()
            except BaseException:
                if abort is not None:
                    abort.set()
                raise
            if not ok:
                if value is None:
                    return
                raise value
            yield value
    finally:  # a run that is ending (a signal, a failure) does not wait out a slow request
        streams.close(ABANDON_AFTER if abort is not None and abort.is_set() else None)
