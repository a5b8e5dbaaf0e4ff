"""The fake API and the history generator the tests share with `archiver demo` (one source)."""

from archiver.fake import (
    API_KEY,
    AUTH_HEADERS,
    FAULTS,
    VIRTUAL_KEY,
    FakeApi,
    Handler,
    Reply,
    Seen,
    Server,
    error_reply,
    json_reply,
    serve,
)
from archiver.generate import HOSTILE, IN_FLIGHT, add_new_jobs, finish_job, make_job, make_jobs

__all__ = [
    "API_KEY",
    "AUTH_HEADERS",
    "FAULTS",
    "HOSTILE",
    "IN_FLIGHT",
    "VIRTUAL_KEY",
    "FakeApi",
    "Handler",
    "Reply",
    "Seen",
    "Server",
    "add_new_jobs",
    "error_reply",
    "finish_job",
    "json_reply",
    "make_job",
    "make_jobs",
    "serve",
]
