"""A peer contender: the jobs loaded by a dlt `rest_api` pipeline into a SQLite file.

    python benchmarks/dlt_loader.py BASE_URL ARCHIVE.db [LIMIT]

`rest_api_source` with dlt's cursor paginator (`after=<id of the last item of data>`, stop when
`has_more` is false), `write_disposition="merge"` on `primary_key="id"`, into the file through
dlt's sqlalchemy destination (dlt has no separate SQLite one) with the dataset `main`, so the
`jobs` table is in ARCHIVE.db itself; dlt puts its merge staging dataset in a file beside it.
dlt unnests the list-valued fields into its own child tables (jobs__result_files, ...) and
flattens nested objects into columns, as it does by default. Quiet (errors only), no
telemetry, and every working file dlt writes (pipeline state, extract and load packages) goes
to a temporary directory removed at the end. Needs the `bench` extra (`pip install -e '.[bench]'`).
"""

import os
import sys
import tempfile
import warnings
from pathlib import Path


def main() -> None:
    base, path = sys.argv[1], str(Path(sys.argv[2]).resolve())
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    headers = {
        "x-portkey-api-key": os.environ["PORTKEY_API_KEY"],
        "x-portkey-virtual-key": os.environ["PORTKEY_VIRTUAL_KEY"],
    }
    with tempfile.TemporaryDirectory(prefix="dlt-bench-") as work:
        # Set before dlt is imported: dlt reads these when it builds its run context.
        os.environ.update(
            RUNTIME__DLTHUB_TELEMETRY="false",
            RUNTIME__LOG_LEVEL="ERROR",
            DLT_DATA_DIR=work,  # pipelines' working directories
            DLT_PROJECT_DIR=work,  # no stray .dlt/config.toml or secrets.toml from the cwd
            DLT_LOCAL_DIR=work,
            XDG_DATA_HOME=work,  # dlt's global dir, otherwise ~/.dlt
        )
        # dlt's sqlalchemy merge job trips SQLAlchemy warnings (SAWarning); they are not ours.
        warnings.filterwarnings("ignore", module=r"dlt\.")
        import dlt
        from dlt.sources.rest_api import rest_api_source

        source = rest_api_source(
            {
                "client": {"base_url": base, "headers": headers},
                "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
                "resources": [
                    {
                        "name": "jobs",
                        "endpoint": {
                            "path": "fine_tuning/jobs",
                            "params": {"limit": limit},
                            "data_selector": "data",
                            "paginator": {
                                "type": "cursor",
                                "cursor_path": "data[-1].id",
                                "cursor_param": "after",
                                "has_more_path": "has_more",
                            },
                        },
                    }
                ],
            }
        )
        pipeline = dlt.pipeline(
            pipeline_name="archiver_bench",
            destination=dlt.destinations.sqlalchemy(credentials=f"sqlite:///{path}"),
            dataset_name="main",
            pipelines_dir=work,
        )
        info = pipeline.run(source)
        info.raise_on_failed_jobs()


if __name__ == "__main__":
    main()
