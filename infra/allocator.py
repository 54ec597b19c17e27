"""How a long-running service asks the C allocator (glibc's malloc) to give memory back.

A worker catching up after a restart reads fetch responses of megabytes. glibc serves blocks
above its mmap threshold with mmap and unmaps them when freed, but the threshold is dynamic: the
first such block freed raises it to that block's size, so every later response is carved from
the heap, which fragments and is not given back. The process then keeps its catch-up peak for
the rest of its life. Setting the threshold once (``mallopt(M_MMAP_THRESHOLD)``, what the
environment variable ``MALLOC_MMAP_THRESHOLD_`` does) switches the rise off. The records of those
responses are smaller blocks, from the heap; freed, they leave whole free pages between live
blocks, which only ``malloc_trim`` hands back. Where the C library is not glibc (macOS, musl)
this does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@functools.cache  # finding the C library runs ldconfig: once per process, not on every trim
def _libc_function(name: str) -> ctypes._CFuncPtr | None:
    """A function of glibc's allocator, or None where the C library has none of that name."""
    lib = ctypes.util.find_library("c")
    if lib is None:
        return None
    try:
        return getattr(ctypes.CDLL(lib), name, None)
    except OSError:
        return None


def fix_mmap_threshold(threshold: int) -> bool:
    """Serve every block of ``threshold`` bytes or more with its own mapping, for the life of
    the process (0: leave glibc's dynamic threshold). Call it before the service's threads
    start. True if it is set; False where there is no glibc ``mallopt`` or glibc refused."""
    if threshold <= 0:
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        log.info("no glibc mallopt here: the allocator keeps its own mmap threshold")
        return False
    if mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(threshold)) != 1:
        log.warning("glibc refused an mmap threshold of %d bytes (its maximum is 32 MiB on 64-bit)", threshold)
        return False
    return True


def give_back() -> bool:
    """Return the heap's whole free pages to the system (``malloc_trim(0)``). It walks the free
    lists, a few milliseconds, with the allocator locked: call it from a thread, now and then.
    True if memory was returned."""
    trim = _libc_function("malloc_trim")
    return bool(trim(ctypes.c_size_t(0))) if trim is not None else False
