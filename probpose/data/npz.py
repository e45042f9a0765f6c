"""Reading NumPy ``.npz`` archives from users' disks without trusting them.

:class:`NpzArchive` opens the zip once and reads members lazily, one key at a time, so a file is
only read as far as an importer needs it. Before allocating an array it checks the ``.npy`` header:
no object (pickled) dtypes, and the declared shape must match the bytes the member holds, so a
header declaring 10^12 rows is refused instead of allocating; arrays above :data:`MAX_ARRAY_BYTES`
are refused too. Corrupt or truncated data (bad deflate streams, CRC errors) is a
:class:`~probpose.errors.DataError` naming the file and key.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from probpose.errors import DataError
from probpose.files import input_file

__all__ = ["MAX_ARRAY_BYTES", "NpzArchive", "read_npy"]

MAX_ARRAY_BYTES = 4 * 2**30
"""Largest array probpose reads from one ``.npz`` member (4 GiB; real pose files hold megabytes)."""

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n} bytes"


def _header(fp, file: str, key: str | None, size: int, max_bytes: int) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Parse and check a ``.npy`` header at ``fp`` (a stream of ``size`` bytes in all)."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        header_len = fp.tell()
    except Exception as e:  # numpy's header parser raises many kinds on corrupt bytes: all mean "corrupt"
        raise DataError(file, key, f"not a readable array ({type(e).__name__}: {e})") from None
    if dtype.hasobject:
        raise DataError(file, key, "holds Python objects (pickled data); refused: only numeric arrays")
    count = 1
    for s in shape:
        count *= int(s)
    nbytes = count * dtype.itemsize
    if nbytes > max_bytes:
        raise DataError(file, key, f"declares shape {shape} ({_gib(nbytes)}), above the {_gib(max_bytes)} limit")
    held = size - header_len
    if nbytes != held:
        raise DataError(file, key, f"declares shape {shape} ({_gib(nbytes)}) but holds {_gib(max(held, 0))} of data")
    return tuple(int(s) for s in shape), bool(fortran), dtype, nbytes


def _read_body(fp, shape: tuple[int, ...], fortran: bool, dtype: np.dtype, nbytes: int) -> np.ndarray:
    data = bytearray(nbytes)
    view = memoryview(data)
    got = 0
    while got < nbytes:
        n = fp.readinto(view[got:])
        if not n:
            break
        got += n
    if got != nbytes:
        raise EOFError(f"{got} of {nbytes} bytes")
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)


def read_npy(path: str | Path, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """A ``.npy`` file's array, read with the same checks as :meth:`NpzArchive.read` (no pickles, a
    size limit, a header that matches the data); :class:`~probpose.errors.DataError` otherwise."""
    path = input_file(path, ".npy array")  # a regular file: a FIFO or device would block
    try:
        size = path.stat().st_size
        with open(path, "rb") as fp:
            shape, fortran, dtype, nbytes = _header(fp, str(path), None, size, max_bytes)
            return _read_body(fp, shape, fortran, dtype, nbytes)
    except DataError:
        raise
    except _READ_ERRORS as e:
        raise DataError(str(path), None, f"unreadable .npy ({type(e).__name__}: {e})") from None


class NpzArchive:
    """A ``.npz`` file opened for checked, lazy reads. Use as a context manager.

    Args:
        path: the archive.
        max_bytes: largest array admitted (default :data:`MAX_ARRAY_BYTES`).
    """

    def __init__(self, path: str | Path, max_bytes: int = MAX_ARRAY_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        try:
            self._zip = zipfile.ZipFile(self.path)
        except _READ_ERRORS as e:
            raise DataError(str(self.path), None, f"not a NumPy .npz archive ({type(e).__name__}: {e})") from None
        self._members = {info.filename[:-4]: info for info in self._zip.infolist() if info.filename.endswith(".npy")}

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def keys(self) -> list[str]:
        return list(self._members)

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def _header(self, key: str, fp) -> tuple[tuple[int, ...], bool, np.dtype, int]:
        return _header(fp, str(self.path), key, self._members[key].file_size, self.max_bytes)

    def shape(self, key: str) -> tuple[int, ...]:
        """The declared (and checked) shape of ``key``, without reading its data."""
        self._require(key)
        with self._zip.open(self._members[key]) as fp:
            return self._header(key, fp)[0]

    def read(self, key: str) -> np.ndarray:
        """The array ``key`` (checked header, then exactly the declared bytes)."""
        self._require(key)
        try:
            with self._zip.open(self._members[key]) as fp:
                shape, fortran, dtype, nbytes = self._header(key, fp)
                return _read_body(fp, shape, fortran, dtype, nbytes)
        except DataError:
            raise
        except _READ_ERRORS as e:
            raise DataError(str(self.path), key, f"corrupt or truncated data ({type(e).__name__}: {e})") from None

    def _require(self, key: str) -> None:
        if key not in self._members:
            raise DataError(str(self.path), key, f"missing (keys: {sorted(self._members)})")
