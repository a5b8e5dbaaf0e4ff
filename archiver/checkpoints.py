"""Checkpoints: the chain's head (archiver/chain.py) written down where the archive's writers cannot
rewrite it, one JSON line each, optionally signed with Ed25519:

    {"archive": "<uuid>", "seq": 1234, "hash": "<hex>", "at": "2026-12-07T06:00:00Z", "signature": "<base64>"}

The signature is over the canonical JSON (RFC 8785) of the line without "signature". Keys are PEM
files, as `openssl genpkey -algorithm ed25519` writes them (the `cryptography` package reads them).
"""

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiver.canonical import canonical_json
from archiver.errors import ConfigError


@dataclass(frozen=True)
class Mark:
    archive: str
    seq: int
    hash: str
    at: str  # UTC, ISO 8601
    signature: str | None = None

    def signed(self) -> bytes:
        return canonical_json(
            {"archive": self.archive, "seq": self.seq, "hash": self.hash, "at": self.at}
        ).encode()

    def as_dict(self) -> dict[str, Any]:
        d = {"archive": self.archive, "seq": self.seq, "hash": self.hash, "at": self.at}
        return d if self.signature is None else d | {"signature": self.signature}


@dataclass(frozen=True)
class Keeping:
    """Where a run's checkpoint goes besides its row: a log file, signed with a key (both optional)."""

    log: Path | None = None
    key: Any = None  # an Ed25519 private key (private_key)


NOWHERE = Keeping()  # the run's row only


def keeping(log: str | Path | None, key: str | Path | None) -> Keeping:
    """Checked before a run starts: the log can be appended to, the key is an Ed25519 private key."""
    path = Path(log) if log else None
    if path is not None:
        try:
            open(path, "a").close()
        except OSError as e:
            raise ConfigError(f"cannot append to the checkpoint log {path}: {e.strerror}") from None
    return Keeping(path, private_key(Path(key)) if key else None)


def mark(archive: str, seq: int, digest: str, at: float, key: Any = None) -> Mark:
    """A checkpoint of the chain at `seq`, signed with the private key `key` if given."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    m = Mark(archive, seq, digest, stamp)
    if key is None:
        return m
    return Mark(archive, seq, digest, stamp, base64.b64encode(key.sign(m.signed())).decode())


def append(path: Path, m: Mark) -> None:
    """One line, flushed and synced: a checkpoint the machine forgot protects nothing."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(m.as_dict()) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ConfigError(f"cannot append to the checkpoint log {path}: {e.strerror}") from None


def read(path: Path, public_key: Path | None, fail: Callable[[str, str], None]) -> list[Mark]:
    """The log's checkpoints of any archive; lines that go backwards, are not checkpoints or (with
    a public key) are not signed by it are reported through `fail` and left out."""
    key = load_public_key(public_key) if public_key else None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read the checkpoint log {path}: {getattr(e, 'strerror', None) or e}"
        ) from None
    marks: list[Mark] = []
    archive = None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            m = Mark(str(d["archive"]), int(d["seq"]), str(d["hash"]), str(d["at"]), d.get("signature"))
        except (ValueError, KeyError, TypeError):
            fail("checkpoint", f"line {n} of {path.name} is not a checkpoint")
            continue
        if key is not None and not signed_by(key, m):
            fail(
                "signature",
                f"seq {m.seq}: the checkpoint of {m.at} (line {n}) is not signed by the public key",
            )
            continue
        archive = archive or m.archive
        if m.archive != archive:
            fail("checkpoint", f"line {n} of {path.name} is of another archive ({m.archive})")
            continue
        if marks and m.seq < marks[-1].seq:
            fail("checkpoint", f"seq {m.seq}: the checkpoint of {m.at} goes back from seq {marks[-1].seq}")
        marks.append(m)
    return marks


def signed_by(key: Any, m: Mark) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(base64.b64decode(m.signature or "", validate=True), m.signed())
    except (InvalidSignature, ValueError):
        return False
    return True


def private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_key(path, lambda data: load_pem_private_key(data, password=None))
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_key(path, load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return key


def load_key(path: Path, load: Callable[[bytes], Any]) -> Any:
    try:
        return load(path.read_bytes())
    except OSError as e:
        raise ConfigError(f"cannot read the key {path}: {e.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is not a PEM key (make one: openssl genpkey -algorithm ed25519)") from None
