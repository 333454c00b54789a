"""Small shared utilities: atomic file writes, output-path safety and reading fitted JSON models."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_text", "ensure_writable_dir", "read_json_model", "refuse_overwrite_inputs"]


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check it is a writable directory.

    Raises:
        ValueError: ``path`` is a file, or the directory cannot be created or written to.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output path {str(path)!r} exists and is not a directory.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create output directory {str(path)!r}: {err.strerror}.") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"output directory {str(path)!r} is not writable.")
    return path


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, changing it per write would race threads


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write a file atomically: ``write(tmp_path)`` into the same folder, then ``os.replace``.

    A failure leaves no partial file behind (and an existing file at ``path`` untouched).
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as handle:  # the data reach the disk before the rename makes them visible
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give what open() would have given
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # the rename itself reaches the disk (a power cut keeps the new file)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform or file system without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def refuse_overwrite_inputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path]) -> None:
    """Raise ``ValueError`` if any output path resolves to one of the input files."""
    resolved = {Path(p).resolve() for p in inputs}
    for out in outputs:
        if Path(out).resolve() in resolved:
            raise ValueError(f"refusing to write {str(out)!r}: it is one of the inputs.")


def read_json_model(path: str | Path, error: type[Exception], what: str, missing_fix: str) -> Any:
    """Parse the JSON file of a fitted model (quality model, error model), naming the file and the fix.

    Args:
        path: the JSON file.
        error: the exception type to raise.
        what: the model in words, e.g. ``"quality model"``.
        missing_fix: what to do when the file does not exist.

    Raises:
        error: the file does not exist, or is not JSON.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist: {missing_fix}") from None
    except ValueError as err:
        raise error(f"{what} {path} is not JSON ({err}); refit it.") from None
