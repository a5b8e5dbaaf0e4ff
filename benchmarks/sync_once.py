"""One `archiver sync --no-details` of `ScaledApi` (run.py's fake and page size) into an archive
you name, under /usr/bin/time: to measure one sync at a size, or a `--full` over an archive an
earlier call made, without the rest of run.py (the floor, the peers, the reads).

    python benchmarks/sync_once.py 1000000 /tmp/a.db            # a first sync of a million jobs
    python benchmarks/sync_once.py 1000000 /tmp/a.db --full     # then a full walk over it
    python benchmarks/sync_once.py 100000 postgresql://postgres@127.0.0.1:54329/a --full

Prints /usr/bin/time's line: wall s, user s, sys s, peak RSS KB.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.audit_cost import sync_argv  # noqa: E402
from benchmarks.history import ScaledApi  # noqa: E402
from benchmarks.run import LIMIT  # noqa: E402
from tests.fake_api import AUTH_HEADERS, serve  # noqa: E402


def main(n: int, db: str, *extra: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, serve(ScaledApi(n, n, Path(tmp), LIMIT)) as base_url:
        env = os.environ | {
            "PORTKEY_BASE_URL": base_url,
            "PORTKEY_API_KEY": AUTH_HEADERS["x-portkey-api-key"],
            "PORTKEY_VIRTUAL_KEY": AUTH_HEADERS["x-portkey-virtual-key"],
        }
        time = ["/usr/bin/time", "-f", "%e wall s, %U user s, %S sys s, %M KB peak RSS"]
        subprocess.run([*time, *sync_argv(db), "-q", *extra], env=env, check=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], *sys.argv[3:])
