"""Checkpoints with integrity checks, weights-only loading, atomic writes and run metadata.

Every artefact is written to a temporary file in the target directory and renamed into place, so an
interrupted run never leaves a half-written file behind. Checkpoints carry a SHA-256 of their payload:
a truncated or corrupted file is reported as such, with the command that rebuilds it.

The checksum lives in the same file, so it proves integrity, not origin. Loading therefore never runs code
from a file: checkpoints hold only tensors, numbers, strings, lists and dicts, are read with
`torch.load(weights_only=True)`, and `save_checkpoint` refuses to write anything that such a load would reject.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import platform
import re
import struct
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

MAGIC = b"FLOWLIB1"
_HEADER = struct.Struct(">8s32sQ")  # magic, sha256 digest, payload length
_UMASK = os.umask(0)
os.umask(_UMASK)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or corrupt."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the final file the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write `data` to `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write `text` (UTF-8) to `path`."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _weights_only_load(payload: bytes) -> Any:
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def save_checkpoint(obj: Any, path: str | os.PathLike) -> Path:
    """Serialise `obj` with torch.save, prefix it with a checksummed header, and write it atomically.

    `obj` may hold only what weights-only loading accepts (tensors, numbers, strings, None, lists, tuples,
    dicts); anything else (a numpy scalar, a dataclass, a function) is refused before a byte is written.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    try:
        _weights_only_load(payload)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"Refusing to write {path}: it holds objects that weights-only loading rejects ({_first_line(exc)}). "
            "Store plain tensors, numbers, strings, lists and dicts (convert configs with .model_dump() or dict())."
        ) from exc
    header = _HEADER.pack(MAGIC, hashlib.sha256(payload).digest(), len(payload))
    write_bytes(path, header + payload)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, rebuild_hint: str = "") -> Any:
    """Load a checkpoint written by `save_checkpoint`, verifying length and checksum.

    Raises `CheckpointError` naming the file, the problem and how to rebuild it (`rebuild_hint`).
    """
    path = Path(path)
    hint = f" Rebuild it with: {rebuild_hint}" if rebuild_hint else " Delete it and rerun the step that writes it."
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.{hint}")
    raw = path.read_bytes()
    if len(raw) < _HEADER.size:
        raise CheckpointError(f"Checkpoint {path} is truncated ({len(raw)} bytes, no complete header).{hint}")
    magic, digest, length = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise CheckpointError(f"Checkpoint {path} is not a flowlib checkpoint (bad magic {magic!r}).{hint}")
    payload = raw[_HEADER.size:]
    if len(payload) != length:
        raise CheckpointError(
            f"Checkpoint {path} is truncated: header promises {length} bytes, file holds {len(payload)}.{hint}"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"Checkpoint {path} is corrupt: SHA-256 checksum mismatch.{hint}")
    try:
        return _weights_only_load(payload)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"Checkpoint {path} contains executable objects that weights-only loading refuses "
            f"({_first_line(exc)}); nothing from it was run. flowlib never loads such files: if an older flowlib "
            f"wrote it, rebuild it.{hint}"
        ) from exc


def _first_line(exc: Exception) -> str:
    """The offending global of a weights-only refusal (e.g. `unsupported global io.open`), else the first line."""
    found = re.search(r"GLOBAL (\S+)", str(exc))
    return f"unsupported global {found.group(1)}" if found else (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (for external inputs such as the Inception weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def config_hash(config: Any) -> str:
    """Stable short hash of a JSON-serialisable config (used to decide whether a resume is valid)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_metadata(**extra: Any) -> dict[str, Any]:
    """Versions and host facts worth storing next to every artefact."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host": platform.node(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        **extra,
    }
