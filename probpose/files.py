"""Writing files so that no failure, interruption or bad path destroys or half-writes one.

- :func:`atomic_path` gives a temporary name beside the destination; the caller writes it; on
  success it is flushed and renamed over the destination in one step, on any failure (an
  exception, Ctrl-C, a caught signal) it is removed and the destination is untouched.
- Temporary names carry the host and process id, so temporaries left by a process that was killed
  outright (SIGKILL, power loss) are recognised and removed by the next write to the same place.
- :func:`check_output_path` refuses a destination that is a folder, sits under a file, or is one of
  the inputs.
- :func:`atomic_folder` does for a whole output folder what :func:`atomic_path` does for a file:
  the folder appears complete or not at all; :func:`check_output_folder` refuses an existing,
  non-empty folder unless the caller allows overwriting it.
- A commit never happens after an interruption seen during the write (:mod:`probpose.signals`
  counts them), even if some library swallowed the ``KeyboardInterrupt``.

A destination that is a symbolic link is followed (:func:`destination`): the file or folder it
points to is written, the link itself is never replaced. A folder output is never put over a
folder that another process filled meanwhile: without ``overwrite`` the commit is a rename that
fails if the destination is not empty, and then this process's output is removed and the other's
kept, with an error saying so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from probpose import signals
from probpose.errors import DataError, short_repr

__all__ = [
    "sha256",
    "destination",
    "json_text",
    "parse_json",
    "input_file",
    "atomic_folder",
    "atomic_path",
    "check_output_folder",
    "check_output_path",
    "check_space",
    "check_writable",
    "atomic_paths",
    "write_error",
    "remove_stale_temporaries",
]


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks: how sources are recorded."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_STALE_OTHER_HOST_SECONDS = 24 * 3600


def _host() -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40] or "host"


def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _shown(path: str | Path) -> str:
    """A path as a user should read it in a message: a temporary of ours (:func:`_temp_name`) is
    shown as the destination it stands for."""
    path = Path(path)
    found = re.fullmatch(r"\.(.+)\.[^.]+\.\d+\.[0-9a-f]{8}\.tmp", path.name)
    return str(path.with_name(found.group(1)) if found else path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_temporaries(final: str | Path) -> list[Path]:
    """Remove temporaries of ``final`` left by processes that no longer run (on this host), or older
    than a day (from another host). Returns what was removed."""
    final = Path(final)
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    host = _host()
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        parts = tmp.name[len(final.name) + 2 : -len(".tmp")].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue  # not one of ours
        tmp_host, pid = parts[0], int(parts[1])
        try:
            if tmp_host == host:
                stale = pid != os.getpid() and not _pid_alive(pid)
            else:
                stale = time.time() - tmp.stat().st_mtime > _STALE_OTHER_HOST_SECONDS
            if stale:
                if tmp.is_dir() and not tmp.is_symlink():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue  # vanished meanwhile, or not ours to remove
    return removed


def json_text(value: object, indent: int | None = 2) -> str:
    """``value`` as strict JSON (what every JSON reader accepts): NaN and infinities, which
    ``json.dumps`` would write as bare ``NaN``/``Infinity``, become ``null``, and a dict at the top
    gains ``"non_finite"``: the dotted keys that held them."""
    found: list[str] = []

    def clean(v: object, where: str) -> object:
        if isinstance(v, float) and not math.isfinite(v):
            found.append(where or "(value)")
            return None
        if isinstance(v, dict):
            return {k: clean(x, f"{where}.{k}" if where else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x, f"{where}[{i}]") for i, x in enumerate(v)]
        return v

    cleaned = clean(value, "")
    if found and isinstance(cleaned, dict):
        cleaned["non_finite"] = found
    return json.dumps(cleaned, indent=indent, allow_nan=False)


def input_file(path: str | Path, what: str = "", error: type[DataError] = DataError) -> Path:
    """``path`` as a ``Path`` if it is a regular file (a symbolic link to one is followed);
    otherwise ``error`` (a :class:`DataError`) naming it: no such file, a folder, or a FIFO, socket
    or device (which would block or never end). Every reader of a user's file starts here."""
    path = Path(path)
    label = f" ({what})" if what else ""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(str(path), None, f"no such file{label}") from None
    except OSError as e:
        raise error(str(path), None, f"cannot be read{label}: {e.strerror or e}") from None
    if stat.S_ISREG(mode):
        return path
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
    )
    raise error(str(path), None, f"is {kind}, not a regular file{label}")


def parse_json(text: str | bytes, file: str | Path, field: str | None = None) -> Any:
    """``json.loads`` for text read from a user's file: invalid JSON, and JSON nested too deeply to
    parse (which would exhaust the call stack), are a :class:`DataError` naming ``file`` and ``field``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError(str(file), field, "JSON nested too deeply to read") from None
    except (TypeError, ValueError) as e:
        raise DataError(str(file), field, f"not valid JSON ({short_repr(str(e), 80)})") from None


def destination(path: str | Path) -> Path:
    """Where writing ``path`` goes: the target of a symbolic link (followed to the end), else the
    path itself. A dangling link names the missing target."""
    path = Path(path)
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def _check_parents(path: Path) -> None:
    """Refuse a path whose nearest existing ancestor is a file."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(str(path), None, f"cannot create it: {parent} is a file, not a folder")
            return


_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.EFBIG,
    errno.EIO,
    errno.ENAMETOOLONG,
    errno.ETXTBSY,
}
SPACE_RESERVE = 4 * 2**20
"""Bytes left free on a file system after a checked write (:func:`check_space`): room for the
metadata a file format writes when it closes."""


def _existing_folder(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.is_dir():
            return folder
    return Path(".")


def check_writable(path: str | Path) -> None:
    """Refuse (:class:`DataError` naming ``path``) an output whose folder cannot be written --
    read-only file system, no permission -- by creating and removing a probe file in the nearest
    existing folder on its way, before any work is done."""
    path = Path(path)
    folder = _existing_folder(path.parent)
    probe = folder / f".probpose-write-check.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as e:
        raise DataError(str(path), None, f"cannot be written: {e.strerror or e} ({folder})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_space(path: str | Path, nbytes: int) -> None:
    """Refuse (:class:`DataError` naming ``path``) to write about ``nbytes`` more bytes where the file
    system would keep less than :data:`SPACE_RESERVE` free. Libraries that do not survive a full disk
    (HDF5: a failed write there can end in a crash) check before each block instead of failing in it."""
    path = Path(path)
    free = shutil.disk_usage(_existing_folder(path.parent)).free
    if free < nbytes + SPACE_RESERVE:
        raise DataError(
            _shown(path),
            None,
            f"no space left on the device: {free:,} bytes free, about "
            f"{nbytes + SPACE_RESERVE:,} needed; nothing was kept",
        )


def write_error(error: BaseException) -> DataError | None:
    """A failed write or read of a file the user named (no space, read-only, no permission, ...) as
    one :class:`DataError` naming the path, or ``None`` for any other error (a bug keeps its
    traceback). Recognises ``OSError`` errnos and HDF5's messages, which carry ``errno = N``."""
    if not isinstance(error, OSError):
        return None
    code, where = error.errno, error.filename
    if code is None:
        found = re.search(r"errno = (\d+)", str(error))
        code = int(found.group(1)) if found else None
        named = re.search(r"filename = '([^']*)'", str(error))
        where = named.group(1) if named else where
    if code is None and re.search(r"\d+ requested and \d+ written", str(error)):
        # NumPy's tofile (np.save to a real file) reports a short fwrite without an errno
        reason = "could not write every byte (no space left on the device?); nothing was kept"
        return DataError(_shown(where) if where else "(output)", None, reason)
    if code not in _WRITE_ERRNOS:
        return None
    return DataError(_shown(where) if where else "(output)", None, f"{os.strerror(code)}; nothing was kept")


def check_output_path(path: str | Path, inputs: Iterable[str | Path] = (), what: str = "output") -> Path:
    """Refuse an output path that is a folder, whose parent is a file, or that is one of ``inputs``.

    Raises :class:`~probpose.errors.DataError` naming the path; returns it as a ``Path``."""
    path = destination(path)
    if path.is_dir():
        raise DataError(str(path), None, f"is a folder; give a file name for the {what}")
    _check_parents(path)
    target = path.resolve()
    for src in inputs:
        src = Path(src)
        same = src.resolve() == target
        if not same and src.exists() and path.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(src, path)
        if same:
            raise DataError(str(path), None, f"is also an input; the {what} would overwrite it -- choose another name")
    check_writable(path)
    return path


@contextlib.contextmanager
def atomic_path(final: str | Path, mode: int = 0o666) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; commit it to ``final`` when the block succeeds.

    The caller writes the temporary (any library, any number of opens). On success the file is
    fsynced and renamed over ``final`` (permissions ``mode`` minus the umask). On any exception,
    and if an interruption was seen during the block (:func:`probpose.signals.handle_signals`), the temporary is
    removed, ``final`` is left as it was and the exception (or :class:`~probpose.signals.Interrupted`) propagates.
    A ``final`` that is a symbolic link is followed (its target is replaced, not the link)."""
    final = destination(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = _temp_name(final)
    seen_before = signals.interrupt_count()
    try:
        yield tmp
        signals.raise_if_interrupted_since(seen_before)
        if tmp.exists():
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, mode & ~umask)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        else:
            raise FileNotFoundError(f"nothing was written to the temporary file for {final}")
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_paths(*finals: str | Path) -> Iterator[list[Path]]:
    """:func:`atomic_path` for files that belong together (a report's ``.json`` and ``.md``): yields
    one temporary per destination and renames them into place only after every one was written, so
    a failure or interruption while writing any of them leaves all the old files as they were."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(f)) for f in finals]


def check_output_folder(
    path: str | Path, inputs: Iterable[str | Path] = (), overwrite: bool = False, what: str = "output folder"
) -> Path:
    """Refuse an output folder that is a file, sits under a file, contains one of ``inputs``, or
    exists with something in it (unless ``overwrite``). Raises :class:`~probpose.errors.DataError`.
    A symbolic link is followed (see :func:`destination`)."""
    path = destination(path)
    if path.exists() and not path.is_dir():
        raise DataError(str(path), None, f"is a file; give a folder for the {what}")
    _check_parents(path)
    target = path.resolve()
    for src in inputs:
        src = Path(src).resolve()
        if src == target or target in src.parents:
            raise DataError(str(path), None, f"holds the input {src}; the {what} would replace it -- choose another")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise DataError(str(path), None, f"exists and is not empty; allow `overwrite` to replace the {what}")
    check_writable(path)
    return path


@contextlib.contextmanager
def atomic_folder(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it replaces ``final`` (which must be
    absent or empty unless ``overwrite``); on any failure or interruption it is removed and ``final``
    is left as it was. The old folder, when replaced, is removed only after the new one is in place.
    Without ``overwrite``, a ``final`` that another process filled while this one worked is kept
    and this one's output discarded, with a :class:`~probpose.errors.DataError`; a symbolic link
    is followed (its target folder is written, the link stays)."""
    final = destination(final)
    check_output_folder(final, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = _temp_name(final)
    tmp.mkdir()
    seen_before = signals.interrupt_count()
    try:
        yield tmp
        signals.raise_if_interrupted_since(seen_before)
        old = None
        if not overwrite:
            try:  # rename(2) onto a folder succeeds only if that folder is empty: never over another's output
                os.rename(tmp, final)
            except OSError:
                if final.exists() and final.is_dir() and any(final.iterdir()):
                    why = "was filled by another process while this one ran: its output is kept, this one's dropped"
                    raise DataError(str(final), None, f"{why} -- choose another output folder") from None
                raise
            return
        if final.exists():
            old = _temp_name(final)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
