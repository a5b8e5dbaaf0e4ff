"""`archiver verify`: the audit chain recomputed, the archive checked against it, one verdict."""

import json
import sys
from typing import TYPE_CHECKING

import click

from archiver.cli.main import cli, db_option, meta, open_archive, output_options

if TYPE_CHECKING:
    from archiver.verify import Verdict

NOT_INTACT = 6  # the exit code of an archive that fails verification (errors.py lists them all)


@cli.command("verify", short_help="Check the audit trail: hash chain, jobs, checkpoints.")
@db_option
@click.option(
    "--checkpoints",
    "checkpoint_log",
    type=click.Path(dir_okay=False),
    envvar="ARCHIVER_CHECKPOINT_LOG",
    show_envvar=True,
    help="The checkpoint log kept elsewhere (sync --checkpoint-log): each line checked against the chain.",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False),
    envvar="ARCHIVER_PUBLIC_KEY",
    show_envvar=True,
    help="Ed25519 public key (PEM): every checkpoint must be signed by its private key.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as one JSON object.")
@output_options
def verify_command(database: str, checkpoint_log: str | None, public_key: str | None, as_json: bool) -> None:
    """Recompute the audit chain and check the archive against it: every link's hash and its
    link to the one before, that each record says what its row says, that each job's row and
    details are what its newest records say, and the checkpoints kept elsewhere.

    Exit 0 when intact, 6 when not (the first failure of each kind is printed with its seq).
    Links after the last checkpoint kept elsewhere are protected by nothing yet: a writer who
    rewrites the whole chain consistently is caught only by a checkpoint it could not rewrite.

    \b
    Example (an auditor's check):
      archiver verify --db archive.db --checkpoints /mnt/elsewhere/checkpoints.log --public-key archiver.pub
    """
    shown = sys.stderr.isatty() and not meta("quiet") and not as_json
    with open_archive(database) as archive:
        verdict = archive.verify(checkpoint_log, public_key, on_progress=progress if shown else None)
    if shown:
        click.echo("\r\033[K", nl=False, err=True)
    click.echo(json.dumps(verdict.as_dict()) if as_json else "\n".join(lines(verdict)))
    if not verdict.intact:
        raise click.exceptions.Exit(NOT_INTACT)


def progress(v: "Verdict") -> None:
    click.echo(f"\rverify: {v.rows:,} links checked", nl=False, err=True)


def lines(v: "Verdict") -> list[str]:
    checked = f"{v.rows:,} links checked, {v.jobs:,} jobs and {v.details:,} jobs' details against them"
    out = [f"INTACT: {checked}" if v.intact else f"NOT INTACT: {len(v.first)} kinds of failure; {checked}"]
    out += [f"  {k} ({v.counts[k]:,}): {v.first[k]}" for k in v.first]
    if v.checkpoints:
        signed = "signatures checked" if v.signed else "signatures not checked (no --public-key)"
        out.append(
            f"Checkpoints: {v.checkpoints:,} read, {signed}; "
            f"the newest matching anchors seq {v.anchored_seq:,}"
        )
    else:
        out.append("Checkpoints: none given (--checkpoints): nothing kept elsewhere vouches for the chain")
    out.append(
        f"Links after it, protected by nothing yet: {v.unanchored:,} (the chain ends at seq {v.last_seq:,})"
    )
    return out
