"""Keep a classify child small (bench/memory.py measures it as PSS).

Three costs this module cuts, none of which changes what a child computes:
- Copy-on-write after the fork. The parent imports TensorFlow and Keras (~250 MiB of Python objects and native
  heap) so that a child starts in seconds; a child then shares those pages until it writes to them. CPython's
  cyclic garbage collector writes to every object it scans, so each child's first collections would copy most of
  that heap. `freeze_before_fork()` moves everything the parent holds into the collector's permanent generation,
  which it never scans (https://docs.python.org/3/library/gc.html#gc.freeze).
- Freed heap kept by the allocator. Loading a version and compiling its XLA shapes allocates and frees tens of
  MiB (LLVM's working memory, the Keras model the compiled functions were built from). glibc keeps freed memory
  in its arenas; `release_free_heap()` hands it back to the kernel with malloc_trim(0). Elsewhere than glibc it
  only collects.
- The library pages only the parent touched. Importing TensorFlow runs its static initialisers (op and kernel
  registration) across ~200 MiB of libtensorflow's read-only pages, which the parent then never touches again. A
  child does not inherit those page-table entries (fork copies none for a file mapping the process never wrote
  to), so the parent alone is charged for them, for as long as it lives. `drop_clean_library_pages()` tells the
  kernel the parent is done with every read-only file mapping it never wrote to (madvise MADV_DONTNEED): the pages
  stay in the page cache, where a child that needs one maps it for a minor fault, and the kernel may reclaim the
  rest. Nothing is lost: a page of such a mapping is, by construction, the file's own content.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _libc(function: str, argtypes: list[Any]) -> Callable[..., int] | None:
    """A C library function returning int, or None where the C library lacks it (malloc_trim: musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        found = getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None
    found.argtypes = argtypes
    found.restype = ctypes.c_int
    return found  # type: ignore[no-any-return]


_TRIM = _libc("malloc_trim", [ctypes.c_size_t])
_MADVISE = _libc("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int])
_MADV_DONTNEED = 4  # <sys/mman.h> on Linux, every architecture
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s+(/.*)?$")


def freeze_before_fork() -> None:
    """In a parent about to fork its pool: collect once, then keep the collector off what is left."""
    gc.collect()
    gc.freeze()


def clean_library_mappings(smaps: str) -> list[tuple[int, int]]:
    """The (start, end) of every mapping in a /proc/PID/smaps text that is a private, read-only view of a file and
    holds no anonymous page: dropping its pages loses nothing, since each one reads back the same from the file.
    A written page (relocations made read-only afterwards, a copy-on-write) shows as Anonymous and keeps the
    mapping out."""
    mappings: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for line in smaps.splitlines():
        header = _MAPPING.match(line)
        if header is not None:
            start, end, perms, path = header.groups()
            private_read_only = perms[1] == "-" and perms[3] == "p"
            current = (int(start, 16), int(end, 16)) if private_read_only and path else None
        elif current is not None and line.startswith("Anonymous:"):
            if int(line.split()[1]) == 0:
                mappings.append(current)
            current = None
    return mappings


def drop_clean_library_pages() -> int:
    """In the pool parent, before it forks: let go of the read-only library pages it touched (TensorFlow's start-up
    among them) and will not touch again; those it does touch come back from the page cache. Returns the bytes
    of mappings advised; 0 where /proc or madvise is missing (not Linux)."""
    smaps = Path("/proc/self/smaps")
    if _MADVISE is None or not smaps.exists():
        return 0
    advised = 0
    for start, end in clean_library_mappings(smaps.read_text()):
        if _MADVISE(start, end - start, _MADV_DONTNEED) == 0:
            advised += end - start
    return advised


def release_free_heap() -> None:
    """Collect cycles, then give the allocator's free pages back to the kernel (after a load or a compile)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)
