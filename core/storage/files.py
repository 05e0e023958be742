"""File helpers of the storage layer: what a replaced file's old bytes become."""

from __future__ import annotations

import os

__all__ = ["overwrite_with_zeros"]


def overwrite_with_zeros(fd: int) -> None:
    """Overwrite the whole file open at ``fd`` (an old version already replaced by a rename) with zeros and sync it."""
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    block = bytes(min(size, 1 << 20))
    left = size
    while left > 0:
        left -= os.write(fd, block[: min(left, len(block))])
    os.fsync(fd)
