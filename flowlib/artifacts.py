"""Checkpoints with integrity checks, weights-only loading, atomic writes and run metadata.

Every artefact is written to a temporary file in the target directory and renamed into place, so an
interrupted run never leaves a half-written file behind. Checkpoints carry a SHA-256 of their payload:
a truncated or corrupted file is reported as such, with the command that rebuilds it.

The checksum lives in the same file, so it proves integrity, not origin. Loading therefore never runs code
from a file: checkpoints hold only tensors, numbers, strings, lists and dicts, are read with
`torch.load(weights_only=True)`, and `save_checkpoint` refuses to write anything that such a load would reject.
"""
from __future__ import annotations

import glob
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

from .errors import FlowlibError

MAGIC = b"FLOWLIB1"
_HEADER = struct.Struct(">8s32sQ")  # magic, sha256 digest, payload length
_UMASK = os.umask(0)
os.umask(_UMASK)


class CheckpointError(FlowlibError, RuntimeError):
    """A checkpoint is missing, truncated or corrupt, or a path cannot hold one.

    >>> import tempfile, pathlib
    >>> from flowlib import load_velocity_model
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "broken.pt"
    >>> _ = path.write_bytes(b"not a checkpoint")
    >>> try:
    ...     load_velocity_model(path)
    ... except CheckpointError:
    ...     print("refused")
    refused
    """


class CheckpointKindError(CheckpointError):
    """A checkpoint of one kind (say, an FGM generator) was given where another kind (a velocity model) belongs.

    >>> import tempfile, pathlib
    >>> from flowlib.artifacts import load_checkpoint, save_checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grids.pt"
    >>> _ = save_checkpoint({"times": [0.0, 1.0]}, path, kind="artefact")
    >>> try:
    ...     load_checkpoint(path, kind="velocity")
    ... except CheckpointKindError:
    ...     print("refused")
    refused
    """


# every kind of checkpoint flowlib writes: what it is, and the function that loads it
KINDS: dict[str, tuple[str, str]] = {
    "velocity": ("a velocity model", "flowlib.load_velocity_model"),
    "generator": ("an FGM one-step generator", "flowlib.distill.fgm.load_generator"),
    "bespoke": ("a Bespoke solver", "flowlib.distill.bespoke.load_bespoke"),
    "refiner": ("a FlowTurbo refiner", "flowlib.distill.flowturbo.load_refiner"),
    "autoencoder": ("an image autoencoder (a latent teacher's latent space)", "flowlib.latent.load_autoencoder"),
    "trainer": ("a trainer state (for resuming)", "the trainer's ckpt_dir (train(..., ckpt_dir))"),
    "ground_truth": ("a teacher's ground truth", "flowlib.artifacts.load_checkpoint"),
    "artefact": ("a pipeline artefact", "flowlib.artifacts.load_checkpoint"),
}


def infer_kind(obj: Any) -> str:
    """The kind a checkpoint records, or for files written before kinds were recorded, the kind its keys imply."""
    if not isinstance(obj, dict):
        return "artefact"
    if obj.get("kind") in KINDS:
        return obj["kind"]
    keys = set(obj)
    if "fingerprint" in keys and "optimizer" in keys:
        return "trainer"
    if {"model_config", "shape", "state_dict"} <= keys:
        return "generator" if "t_star" in (obj.get("meta") or {}) else "velocity"
    if {"base", "n", "state_dict"} <= keys:
        return "bespoke"
    if {"config", "shape", "state_dict"} <= keys:
        return "refiner"
    if {"noise", "samples"} <= keys:
        return "ground_truth"
    return "artefact"


def check_kind(obj: Any, path: str | os.PathLike, kind: str) -> None:
    """Raise `CheckpointKindError` naming both kinds unless the checkpoint `obj` (read from `path`) is a `kind`."""
    found = infer_kind(obj)
    if found != kind:
        what, loader = KINDS[found]
        raise CheckpointKindError(f"{path} is {what}, not {KINDS[kind][0]}; load it with {loader}, or pass the "
                                  f"path of {KINDS[kind][0]}.")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files an interrupted write to `path` left beside it (`.<name>.<pid>.*.tmp` whose writing
    process is gone, or of an older naming without a pid)."""
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _pid_alive(int(pid))):
            continue
        try:
            tmp.unlink()
        except OSError:
            pass


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    The temporary name carries the writer's pid, so the next write to `path` removes what a killed writer left."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"Cannot write {path}: it is a directory. Give a file path inside it, e.g. "
                              f"{path / 'model.pt'}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the final file the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create `path` if needed and prove it takes a file, before any work whose results go there (a read-only folder,
    or a file where the folder belongs, would otherwise fail only at the first write, after the work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"The {what} {path} is a file, not a folder: move the file away or give another folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CheckpointError(f"The {what} {path} is not writable ({exc.strerror}): fix its permissions "
                              f"(chmod u+w {path}) or give a folder you can write.") from exc
    return path


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


def save_checkpoint(obj: Any, path: str | os.PathLike, kind: str | None = None) -> Path:
    """Serialise `obj` with torch.save, prefix it with a checksummed header, and write it atomically.

    `obj` may hold only what weights-only loading accepts (tensors, numbers, strings, None, lists, tuples,
    dicts); anything else (a numpy scalar, a dataclass, a function) is refused before a byte is written.
    A dict records its `kind` (one of `KINDS`; default: the kind its keys imply), which typed loaders check.
    Tensors are written from the host, so a file is the same whichever device trained it.
    """
    obj = torch.utils._pytree.tree_map(lambda x: x.cpu() if isinstance(x, torch.Tensor) else x, obj)
    if isinstance(obj, dict):
        kind = kind or infer_kind(obj)
        if kind not in KINDS:
            raise CheckpointError(f"Unknown checkpoint kind {kind!r}; one of {sorted(KINDS)}.")
        obj = {**obj, "kind": kind}
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


def load_checkpoint(path: str | os.PathLike, rebuild_hint: str = "", kind: str | None = None) -> Any:
    """Load a checkpoint written by `save_checkpoint`, verifying length and checksum (and, given `kind`, its kind).

    Raises `CheckpointError` naming the file, the problem and how to rebuild it (`rebuild_hint`).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointError(f"A checkpoint path must be a str or pathlib.Path, got {type(path).__name__}.")
    path = Path(path)
    hint = f" Rebuild it with: {rebuild_hint}" if rebuild_hint else " Delete it and rerun the step that writes it."
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pt"))[:5]
        raise CheckpointError(f"{path} is a directory, not a checkpoint file; pass the .pt file inside it"
                              f"{' (it holds ' + ', '.join(inside) + ')' if inside else ''}.")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist." + (f" Build it with: {rebuild_hint}" if rebuild_hint
                              else " Check the path, or run the step that writes it."))
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
        obj = _weights_only_load(payload)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"Checkpoint {path} contains executable objects that weights-only loading refuses "
            f"({_first_line(exc)}); nothing from it was run. flowlib never loads such files: if an older flowlib "
            f"wrote it, rebuild it.{hint}"
        ) from exc
    if kind is not None:
        check_kind(obj, path, kind)
    return obj


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
