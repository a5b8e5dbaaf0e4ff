"""The latency case's own floor: walk the pages with httpx and parse them, nothing else.

python benchmarks/walk_only.py BASE_URL
"""

import os
import sys

import httpx


def main() -> None:
    headers = {"x-portkey-api-key": os.environ["PORTKEY_API_KEY"]}
    headers["x-portkey-virtual-key"] = os.environ["PORTKEY_VIRTUAL_KEY"]
    with httpx.Client(base_url=sys.argv[1].rstrip("/") + "/", headers=headers) as client:
        params: dict[str, str | int] = {"limit": 100}
        while True:
            body = client.get("fine_tuning/jobs", params=params).json()
            if not body["has_more"]:
                return
            params["after"] = body["data"][-1]["id"]


if __name__ == "__main__":
    main()
