"""Rounds: one case measured in several processes, pooled into one row.

Samples of one process share its luck (memory layout, thread placement, the
neighbours of that minute), so the variance that matters for a comparison lives
between processes as much as within one. ``suite run --rounds R`` measures each
case in R fresh worker processes, interleaved across the sweep
(``suite.session.run_cases``); ``suite ab`` pools its per-side runs the same way.
:func:`merge_rows` makes the one row: samples pooled with the round of each
(``samples_round``), statistics recomputed, and both spreads stated: within a
process (``within_spread``, the median of the rounds' IQR / median, the only thing
``unstable`` judges) and between processes (``round_spread``), each defined in
``suite.stats``. ``suite.track.compare`` tests at the round level.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from suite.cases import RunOptions
from suite.results import Row, measurement_fields
from suite.stats import between_spread, within_spread
from suite.timing import UNSTABLE_NOTE, Measurement, is_unstable

#: Statuses that win a merge, worst first: a case that failed once is reported failed.
_WORST_FIRST = ("mismatch", "error", "timeout", "skipped")


def sample_rounds(row: Row) -> list[int]:
    """The round of each of the row's samples: ``samples_round``, or round 0 for rows that lack it."""
    if len(row.samples_round) == len(row.samples_s):
        return [int(r) for r in row.samples_round]
    return [0] * len(row.samples_s)


def round_samples(row: Row) -> list[np.ndarray]:
    """The row's samples split by round, in round order (one array for a single-round row)."""
    samples = np.asarray(row.samples_s, dtype=float)
    rounds = np.asarray(sample_rounds(row), dtype=int)
    return [samples[rounds == r] for r in sorted(set(rounds.tolist()))]


def merge_rows(rows: Sequence[Row]) -> Row:
    """One row from the rounds of one case: samples pooled with their rounds, statistics recomputed.

    A round that did not produce a timing wins (a failure over a skip), so a case
    that failed once is reported failed. Rows that are themselves pooled keep
    their rounds apart (renumbered after the rounds before them). The merged row
    is contended when any round was, its ``foreign_cpu`` the largest of the rounds', and
    drifted when any round was (``suite.canary``).
    """
    if not rows:
        raise ValueError("no rounds to merge")
    for status in _WORST_FIRST:
        for r in rows:
            if r.status == status:
                return r
    samples: list[float] = []
    labels: list[int] = []
    parts: list[np.ndarray] = []
    offset = 0
    for r in rows:
        per = sample_rounds(r)
        samples += [float(s) for s in r.samples_s]
        labels += [offset + k for k in per]
        parts += [part for part in round_samples(r) if len(part)]
        offset += (max(per) + 1) if per else 1
    first = rows[0]
    if not samples:
        return first
    m = Measurement(tuple(samples), first.calls_per_sample)
    median = m.median
    foreign = [r.foreign_cpu for r in rows if math.isfinite(r.foreign_cpu)]
    # Stability is judged within each process, never on the pooled IQR (which holds
    # the spread between rounds too); other notes (contention, the adapter's) are kept.
    within = within_spread(parts)
    unstable = is_unstable(within)
    notes = [part for r in rows for part in r.reason.split("; ") if part and not part.startswith("unstable:")]
    reasons = list(dict.fromkeys([UNSTABLE_NOTE if unstable else "", *notes]))
    pooled = {**measurement_fields(m), "within_spread": within, "unstable": unstable}
    return dataclasses.replace(
        first,
        **pooled,
        reason="; ".join(filter(None, reasons)),
        stop_reason=f"pooled from {offset} rounds" if offset > 1 else first.stop_reason,
        gflops=first.flops / median / 1e9 if median > 0 else math.nan,
        gbs=first.bytes / median / 1e9 if median > 0 else math.nan,
        elapsed_s=sum(r.elapsed_s for r in rows if math.isfinite(r.elapsed_s)),
        rounds=offset,
        samples_round=labels,
        round_spread=between_spread([float(np.median(p)) for p in parts]),
        foreign_cpu=max(foreign) if foreign else math.nan,
        contended=any(r.contended for r in rows),
        # The canary: drifted when any round was, each ratio the round's farthest from 1.
        drifted=any(r.drifted for r in rows),
        canary_copy=_farthest_from_one([r.canary_copy for r in rows]),
        canary_matmul=_farthest_from_one([r.canary_matmul for r in rows]),
    )


def _farthest_from_one(ratios: Sequence[float]) -> float:
    known = [r for r in ratios if math.isfinite(r)]
    return max(known, key=lambda r: abs(r - 1)) if known else math.nan


def as_round(row: Row) -> Row:
    """A row of one process labelled as one round (``merge_rows`` numbers the rounds it pools)."""
    return dataclasses.replace(
        row, rounds=1 if row.status == "ok" else row.rounds, samples_round=[0] * len(row.samples_s)
    )


def round_options(options: RunOptions, r: int) -> RunOptions:
    """The options of round ``r`` (from 0): the sampling budget split over the rounds, ceilings in round 0 only.

    A case's budget is the case's, not the round's, so rounds cost worker starts and
    warm-ups rather than R times the sampling; device ceilings are measured once, by
    the first round's workers. The local runner and the fleet's node agents both use it.
    """
    rounds = max(options.rounds, 1)
    return dataclasses.replace(
        options,
        timer=dataclasses.replace(options.timer, budget_s=options.timer.budget_s / rounds),
        ceilings=options.ceilings and r == 0,
    )
