"""Merging shards: result folders that each ran part of a sweep (CI matrix jobs, fleet runs) into one run.

It lives in the tracking wing because its inputs are CI's: a matrix whose jobs each
ran a slice of the sweep, uploaded as artifacts and merged in a final job (what asv
users have asked for in asv issue 1362; pyperf checks metadata in ``convert --add``).

The rules, checked before anything is written:

- every shard names the machine of each of its rows (its fingerprint); a shard
  whose stored machine description does not hash to the fingerprint it claims is
  refused, and so is a row that names a machine its shard does not describe;
- rows of different machines are kept apart (each keeps its ``machine``; the
  merged metadata holds every machine under its fingerprint, ceilings included);
- the same case measured twice on one machine must agree (same status and
  samples) or the merge is refused, unless ``keep="newest"`` keeps the row of the
  shard that finished last.

Nothing here writes; ``python -m suite merge`` writes the merged folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.machine import new_run_id, now_iso
from suite.machines import checked_fingerprint, run_machines, with_machines
from suite.results import Row, load_run

#: What ``keep`` may say when the same case on the same machine differs between shards.
KEEP_CHOICES: tuple[str, ...] = ("newest",)


class MergeError(Exception):
    """The shards do not belong together; one line naming the shard and the reason."""


@dataclass
class Shard:
    """One input folder: where it lies, its metadata and its rows."""

    path: Path
    meta: dict[str, Any]
    rows: list[Row]

    @property
    def finished(self) -> str:
        return str(self.meta.get("finished") or self.meta.get("started") or "")


@dataclass
class Merged:
    """The merged run: metadata, rows, and what was noticed on the way."""

    meta: dict[str, Any]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def load_shard(path: Path) -> Shard:
    """A shard from its folder (or JSON/CSV file); ResultsError when unreadable."""
    meta, rows = load_run(path)
    return Shard(path, meta, rows)


def same_result(a: Row, b: Row) -> bool:
    """Whether two rows of one case on one machine record the same outcome (a shard given twice)."""

    def same(x: float, y: float) -> bool:
        return (math.isnan(x) and math.isnan(y)) or x == y

    return a.status == b.status and same(a.median_s, b.median_s) and list(a.samples_s) == list(b.samples_s)


def _machines_of(shard: Shard) -> dict[str, dict[str, Any]]:
    """The shard's machines, each checked against its description; its rows' machines filled in."""
    machines = run_machines(shard.meta)
    if not machines:
        raise MergeError(f"{shard.path}: no machine fingerprint (no results.json metadata); cannot tell its machine")
    for fp, entry in machines.items():
        actual = checked_fingerprint(entry)
        if actual is not None and actual != fp:
            raise MergeError(
                f"{shard.path}: claims machine {fp} but its recorded machine description fingerprints as {actual}"
            )
    only = next(iter(machines)) if len(machines) == 1 else None
    for row in shard.rows:
        if not row.machine and only is not None:
            row.machine = only
        if row.machine and row.machine not in machines:
            raise MergeError(
                f"{shard.path}: row {row.key} names machine {row.machine}, which the shard does not describe"
            )
    return machines


def merge_shards(shards: Sequence[Shard], keep: str | None = None) -> Merged:
    """One run from ``shards``; MergeError when they do not belong together."""
    if keep is not None and keep not in KEEP_CHOICES:
        raise MergeError(f"unknown --keep {keep!r}; choose from {', '.join(KEEP_CHOICES)}")
    machines: dict[str, dict[str, Any]] = {}
    chosen: dict[tuple[str, str], tuple[Row, Shard]] = {}
    notes: list[str] = []
    for shard in shards:
        for fp, entry in _machines_of(shard).items():
            if fp in machines:
                nodes = machines[fp].setdefault("nodes", [])
                nodes += [n for n in entry.get("nodes", []) if n not in nodes]
            else:
                machines[fp] = dict(entry)
        for row in shard.rows:
            slot = (row.machine, row.key)
            if slot not in chosen:
                chosen[slot] = (row, shard)
                continue
            old, old_shard = chosen[slot]
            if same_result(old, row):
                continue
            if keep != "newest":
                raise MergeError(
                    f"case {row.key} on machine {row.machine or '?'} differs between {old_shard.path} and "
                    f"{shard.path}; pass --keep newest to keep the newer"
                )
            if shard.finished >= old_shard.finished:
                chosen[slot] = (row, shard)
            notes.append(f"{row.key} on {row.machine}: kept {chosen[slot][1].path} (newest)")
    rows = [row for row, _ in chosen.values()]
    return Merged(_merged_meta(shards, machines), rows, notes)


def _merged_meta(shards: Sequence[Shard], machines: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    first = shards[0].meta if shards else {}
    commits = sorted({str(s.meta["git_commit"]) for s in shards if s.meta.get("git_commit")})
    meta: dict[str, Any] = {
        "run_id": new_run_id(),
        "started": min((str(s.meta.get("started", "")) for s in shards), default=""),
        "finished": max((s.finished for s in shards), default=""),
        "merged": now_iso(),
        "merged_from": [
            {
                "path": str(s.path),
                "run_id": s.meta.get("run_id", ""),
                "finished": s.finished,
                "machines": sorted(run_machines(s.meta)),
                "rows": len(s.rows),
            }
            for s in shards
        ],
        "git_commit": commits[0] if len(commits) == 1 else "",
        **{k: first[k] for k in ("sweep", "options") if k in first},
        "interrupted": any(s.meta.get("interrupted") for s in shards),
    }
    if len(commits) > 1:
        meta["git_commits"] = commits
    with_machines(meta, dict(machines))
    return meta
