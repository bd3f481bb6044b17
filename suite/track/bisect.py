"""Bisect: the first commit between GOOD and BAD where one case got slower.

Like ``git bisect`` (and asv's ``find``), over the first-parent history from GOOD
to BAD, in about log2(n) probes. A probe measures the commit against GOOD with the
interleaved A/B that ``suite ab`` makes (``suite.track.ab.interleave``: fresh
processes, sides in lockstep, rounds pooled) and the verdict of
``suite.track.compare``: a commit is *slow* when its median is beyond the
threshold and the ratio's confidence interval lies above 1. BAD is probed first,
so a history with no slowdown stops at once. A probe whose run fails (the commit
does not import, the case errors) is skipped, as ``git bisect skip`` does, and the
next untested commit nearest the middle is probed instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from suite.cases import Case
from suite.track import ab, worktrees
from suite.track.compare import compare_case
from suite.track.config import CompareConfig


class BisectError(Exception):
    """Bad input: a revision that names nothing, a dirty tree, GOOD not an ancestor of BAD."""


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str

    def label(self) -> str:
        return f"{self.sha[:10]} {self.subject}"


@dataclass(frozen=True)
class Probe:
    """One commit measured against GOOD."""

    commit: Commit
    slow: bool | None  # None: skipped
    ratio: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    note: str = ""

    def describe(self) -> str:
        if self.slow is None:
            return f"{self.commit.label()}: skipped ({self.note})"
        verdict = "slower" if self.slow else "not slower"
        extra = f"; {self.note}" if self.note else ""
        return f"{self.commit.label()}: {verdict}, {figures(self)}{extra}"


def figures(p: Probe) -> str:
    return f"{p.ratio:.3f}x GOOD (95% CI {p.ci_low:.3f}-{p.ci_high:.3f})"


@dataclass
class BisectResult:
    """The first slow commit (None when BAD is not slower), the probes in order, and what stayed untested."""

    first_slow: Probe | None
    probes: list[Probe] = field(default_factory=list)
    #: Skipped commits that may hold the slowdown too (between the last fast and the first slow).
    ambiguous: list[Commit] = field(default_factory=list)

    def summary(self) -> str:
        if self.first_slow is None:
            bad = self.probes[0]
            if bad.slow is None:
                return f"BAD could not be measured: {bad.describe()}"
            return f"BAD is not slower than GOOD: {bad.describe()}"
        line = f"first slower commit: {self.first_slow.commit.label()}; {figures(self.first_slow)}"
        if self.ambiguous:
            line += "; or one of the skipped " + ", ".join(c.sha[:10] for c in self.ambiguous)
        return f"{line} ({len(self.probes)} probes)"


def _git(repo: Path, *args: str) -> str:
    try:
        return worktrees.git(repo, *args)
    except worktrees.ABError as e:
        raise BisectError(str(e)) from None


def history(repo: Path, good: str, bad: str) -> list[Commit]:
    """The first-parent commits after GOOD up to BAD, oldest first; BisectError on bad input."""
    try:
        good_sha, bad_sha = worktrees.resolve(repo, good), worktrees.resolve(repo, bad)
    except worktrees.ABError as e:
        raise BisectError(str(e)) from None
    if _git(repo, "status", "--porcelain", "--untracked-files=no"):
        raise BisectError(f"{repo}: the working tree has uncommitted changes; commit or stash them first")
    if good_sha == bad_sha:
        raise BisectError(f"GOOD and BAD are the same commit ({good_sha[:10]})")
    try:
        worktrees.git(repo, "merge-base", "--is-ancestor", good_sha, bad_sha)
    except worktrees.ABError:
        raise BisectError(f"GOOD {good!r} is not an ancestor of BAD {bad!r}") from None
    text = _git(
        repo, "log", "--first-parent", "--ancestry-path", "--reverse", "--format=%H %s", f"{good_sha}..{bad_sha}"
    )
    commits = [Commit(*[*line.split(" ", 1), ""][:2]) for line in text.splitlines() if line.strip()]
    if not commits:
        raise BisectError(f"no first-parent commits from {good!r} to {bad!r}")
    return commits


Measure = Callable[[Commit], Probe]


def search(commits: Sequence[Commit], measure: Measure, progress: Callable[[str], None] | None = None) -> BisectResult:
    """Binary search for the first slow commit; ``commits[-1]`` is BAD, GOOD precedes ``commits[0]``."""
    result = BisectResult(None)

    def probe(i: int) -> Probe:
        p = measure(commits[i])
        result.probes.append(p)
        if progress:
            progress(f"probe {len(result.probes)}: {p.describe()}")
        return p

    last = probe(len(commits) - 1)
    if not last.slow:
        return result
    lo, hi, slowest = -1, len(commits) - 1, last  # lo: known fast (GOOD), hi: known slow
    skipped: set[int] = set()
    while hi - lo > 1:
        untested = [i for i in range(lo + 1, hi) if i not in skipped]
        if not untested:
            break
        mid = (lo + hi) // 2
        i = min(untested, key=lambda k: (abs(k - mid), -k))
        p = probe(i)
        if p.slow is None:
            skipped.add(i)
        elif p.slow:
            hi, slowest = i, p
        else:
            lo = i
    result.first_slow = slowest
    result.ambiguous = [commits[i] for i in sorted(skipped) if lo < i < hi]
    return result


@dataclass
class Prober:
    """Measures commits of ``repo`` against GOOD's checkout with ``suite ab``'s interleaving."""

    repo: Path
    good: ab.Side
    case: Case
    flags: Sequence[ab.Flag]
    rounds: int
    config: CompareConfig
    work: Path
    timeout_s: float = 600.0

    def __call__(self, commit: Commit) -> Probe:
        group = ab.case_flags(self.case)
        try:
            with worktrees.worktrees(self.repo, {"probe": commit.sha}) as trees:
                path, _ = trees["probe"]
                side = ab.Side("head", path, label=commit.sha[:10])
                out = self.work / commit.sha[:12]
                base, head = ab.interleave((self.good, side), [group], self.flags, self.rounds, out, self.timeout_s)
        except worktrees.ABError as e:
            return Probe(commit, None, note=str(e).splitlines()[0][-200:])
        base_rows, head_rows = base.rounds.get(self.case.key, []), head.rounds.get(self.case.key, [])
        if not base_rows or not head_rows:
            return Probe(commit, None, note=f"no row for {self.case.key}")
        b, h = base.merged({})[1][0], head.merged({})[1][0]
        if h.status != "ok":
            return Probe(commit, None, note=f"{h.status}: {h.reason}")
        if b.status != "ok":
            raise BisectError(f"GOOD does not run {self.case.key}: {b.status}: {b.reason}")
        # interleave ran them in pairs, in the design it names
        verdict = compare_case(self.case.key, b, h, self.config, paired=base.design or "ABBA")
        threshold = verdict.threshold if math.isfinite(verdict.threshold) else 0.0
        # Contention makes the gate's verdict inconclusive; bisect decides on the figures it has.
        slow = verdict.ratio > 1 + threshold and verdict.ci_low > 1
        return Probe(commit, slow, verdict.ratio, verdict.ci_low, verdict.ci_high, verdict.note)
