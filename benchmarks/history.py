"""A history of any size for the benchmarks: each page drawn from its own seed, rendered once to a file.

`make_jobs(n)` draws a history from one random stream and keeps it in a list: at 1,000,000 jobs
that is gigabytes in the benchmark's process, and the plain fake finds a cursor by scanning the
list (quadratic). Here page k (jobs k*LIMIT ..) is drawn by `make_job` from `Random(seed, k)`, so
any page can be drawn again alone; the pages are rendered once into one file and served from it
by offset, so that the server costs the measured child as little as a pre-rendered list did. A
job's id names its rank (`ftjob-{rank:06d}{6 hex}`, see archiver/generate.py): a cursor finds its
page in O(1). Memory: one offset per page.
"""

import json
import os
import random
from pathlib import Path
from typing import Any

from archiver.fake import FakeApi, Reply, error_reply, json_reply
from archiver.generate import make_job

NOW = 1_790_000_000


class ScaledApi(FakeApi):
    """The fake, serving a history of `n` jobs (newest first) that it never holds in memory."""

    def __init__(self, n: int, seed: int, tmp: Path, limit: int = 100) -> None:
        super().__init__([])
        self.n, self.seed, self.limit = n, seed, limit
        self.path = tmp / f"history-{n}-{seed}.jsonl"
        self.offsets = [0]
        with self.path.open("wb") as out:
            for k in range(max(-(-n // limit), 1)):
                out.write(self.render(self.draw(k * limit, (k + 1) * limit)))
                self.offsets.append(out.tell())
        self.fd = os.open(self.path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self.fd)
        self.path.unlink()

    def draw(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Jobs of rank start .. stop - 1 (clipped to the history), drawn page by page."""
        stop = min(stop, self.n)
        out: list[dict[str, Any]] = []
        for k in range(start // self.limit, -(-stop // self.limit)):
            rng = random.Random(self.seed * 1_000_003 + k)
            page = [make_job(i, rng, NOW) for i in range(k * self.limit, min((k + 1) * self.limit, self.n))]
            out += page
        first = (start // self.limit) * self.limit
        return out[start - first : stop - first]

    def render(self, jobs: list[dict[str, Any]]) -> bytes:
        has_more = bool(jobs) and rank(jobs[-1]["id"]) + 1 < self.n
        return json.dumps({"object": "list", "data": jobs, "has_more": has_more}).encode()

    def list_page(self, params: dict[str, str]) -> Reply:
        limit = int(params.get("limit", 20))
        start = 0
        if "after" in params:
            after = rank(params["after"])
            if after is None or after >= self.n:
                return error_reply(400, f"No fine-tuning job found with id {params['after']}")
            start = after + 1
        headers = {"content-type": "application/json"}
        if limit == self.limit and start % limit == 0 and start < self.n:
            k = start // limit
            body = os.pread(self.fd, self.offsets[k + 1] - self.offsets[k], self.offsets[k])
            return Reply(200, body, headers)
        return Reply(200, self.render(self.draw(start, start + limit)), headers)

    def one_job(self, job_id: str) -> Reply:
        i = rank(job_id)
        found = self.draw(i, i + 1) if i is not None and i < self.n else []
        if found and found[0]["id"] == job_id:
            return json_reply(200, found[0])
        return error_reply(404, f"No fine-tuning job found with id {job_id}")


def rank(job_id: str) -> int | None:
    """The rank a generated job's id names (None: not such an id)."""
    digits = job_id[6:-6]
    return int(digits) if job_id.startswith("ftjob-") and digits.isdigit() else None
