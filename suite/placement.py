"""Where a case's input lies in memory: a chosen offset within a page, drawn afresh per round.

Why (results/tuning/aliasing.md): NumPy ``cumsum`` on 8x32x256 ran 510-580 us in a process
whose output landed a few dozen bytes after its input modulo 4096 and 361-404 us otherwise.
A store that lands just after a load modulo 4 KiB makes the CPU wait on a false dependency
("4K aliasing"). Address-space randomisation moves whole pages, never the offset within one,
so that offset follows from what the process allocated before: every process of one
revision gets the same luck, and a change that allocates a little more or less moves it.
That is a bias no number of rounds averages out (Mytkowicz et al., "Producing wrong data
without doing anything obviously wrong!", ASPLOS 2009); Stabilizer's remedy (Curtsinger and
Berger, ASPLOS 2013) is to randomise the layout so that it becomes noise that rounds do
average out. The suite randomises the one placement it owns: the timed input is copied to a
cache-line offset within a page drawn per worker process (so per round), or to the offset
``--input-offset`` names. The two sides of an ``ab`` round get the same drawn offset
(``suite.track.ab``), so a round's luck is shared by both sides whenever their own
allocations agree. A counted case's input sits at offset 0 (a count must not move with luck).
"""

from __future__ import annotations

import random
from typing import Any

#: A page: the period of the CPU's address check that 4K aliasing comes from.
PAGE = 4096
#: Offsets are whole cache lines, so the input's alignment for vector loads never changes,
#: only its place within the page.
CACHE_LINE = 64
#: ``RunOptions.input_offset`` for an offset drawn afresh in each worker process.
RANDOM = -1
RANDOM_NAME = "random"


def parse_offset(text: str) -> int:
    """``--input-offset``: ``random`` or a byte offset that is a multiple of 64 below 4096."""
    if text == RANDOM_NAME:
        return RANDOM
    try:
        value = int(text)
    except ValueError:
        value = -2
    if not 0 <= value < PAGE or value % CACHE_LINE:
        raise ValueError(
            f"--input-offset: expected {RANDOM_NAME} or bytes into a page, a multiple of {CACHE_LINE} "
            f"from 0 to {PAGE - CACHE_LINE}, got {text!r}"
        )
    return value


def draw(rng: random.Random | None = None) -> int:
    """A cache-line offset within a page, uniformly (``rng``: seeded, for offsets both sides share)."""
    return (rng or random.SystemRandom()).randrange(0, PAGE, CACHE_LINE)


def offsets(seed: int, count: int) -> list[int]:
    """``count`` offsets from ``seed``: the same list wherever it is drawn (``ab``'s rounds, gatebench's)."""
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]


def place(x: Any, offset: int) -> Any:
    """A copy of the host array ``x`` whose data starts ``offset`` bytes past a page boundary."""
    import numpy as np

    raw = np.empty(x.nbytes + PAGE + offset, dtype=np.uint8)
    skip = -raw.ctypes.data % PAGE + offset
    placed = raw[skip : skip + x.nbytes].view(x.dtype).reshape(x.shape)
    placed[...] = x
    return placed


def offset_of(x: Any) -> int:
    """Where the data of host array ``x`` starts within its page."""
    return int(x.ctypes.data % PAGE)
