"""Keep a classify child small (bench/memory.py measures it as PSS).

Two costs this module cuts, neither of which changes what a child computes:
- Copy-on-write after the fork. The parent imports TensorFlow and Keras (~250 MiB of Python objects and native
  heap) so that a child starts in seconds; a child then shares those pages until it writes to them. CPython's
  cyclic garbage collector writes to every object it scans, so each child's first collections would copy most of
  that heap. `freeze_before_fork()` moves everything the parent holds into the collector's permanent generation,
  which it never scans (https://docs.python.org/3/library/gc.html#gc.freeze).
- Freed heap kept by the allocator. Loading a version and compiling its XLA shapes allocates and frees tens of
  MiB (LLVM's working memory, the Keras model the compiled functions were built from). glibc keeps freed memory
  in its arenas; `release_free_heap()` hands it back to the kernel with malloc_trim(0). Elsewhere than glibc it
  only collects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def freeze_before_fork() -> None:
    """In a parent about to fork its pool: collect once, then keep the collector off what is left."""
    gc.collect()
    gc.freeze()


def release_free_heap() -> None:
    """Collect cycles, then give the allocator's free pages back to the kernel (after a load or a compile)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)
