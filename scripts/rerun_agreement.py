"""How well do two runs of the same sweep agree? A benchmark reading, not a test.

``python scripts/rerun_agreement.py RUN_A RUN_B [--out FILE.md]`` reads two stored
runs (folders, ``results.json`` or ``results.csv``) and prints, over the cases that
are ``ok`` in both:

- the per-case ratio of medians (B / A): p10, median, p90, and how many cases lie
  beyond 1.25x either way (the largest named);
- in each run, the fraction of ok rows flagged ``unstable`` (noise within a
  process) and the fraction of rows flagged ``contended`` or ``drifted``;
- each run's sweep time and the start-of-run load average from its metadata,
  and the canary's run-start figures where the run has them.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite.results import ResultsError, Row, load_run


def _fraction(rows: list[Row], pred: Any) -> tuple[int, int]:
    return sum(1 for r in rows if pred(r)), len(rows)


def _sweep_s(meta: dict[str, Any]) -> str:
    """Seconds from the run's start to its end, as its metadata records them."""
    try:
        start, end = (datetime.fromisoformat(meta[k]) for k in ("started", "finished"))
    except (KeyError, TypeError, ValueError):
        return "?"
    return f"{(end - start).total_seconds():.0f} s"


def summary(a: tuple[dict[str, Any], list[Row]], b: tuple[dict[str, Any], list[Row]], names: tuple[str, str]) -> str:
    (meta_a, rows_a), (meta_b, rows_b) = a, b
    ok_a = {r.key: r for r in rows_a if r.status == "ok" and r.metric == "time"}
    ok_b = {r.key: r for r in rows_b if r.status == "ok" and r.metric == "time"}
    common = sorted(set(ok_a) & set(ok_b))
    ratios = np.array([ok_b[k].median_s / ok_a[k].median_s for k in common])
    lines = [f"# Rerun agreement: {names[0]} -> {names[1]}", ""]
    if len(ratios):
        p10, p50, p90 = np.percentile(ratios, [10, 50, 90])
        far = [(k, r) for k, r in zip(common, ratios, strict=True) if max(r, 1 / r) > 1.25]
        lines += [
            f"- cases ok in both: {len(common)}",
            f"- per-case ratio of medians (B/A): p10 {p10:.3f}, median {p50:.3f}, p90 {p90:.3f}",
            f"- beyond 1.25x either way: {len(far)}"
            + (f" (largest: {max(far, key=lambda kr: max(kr[1], 1 / kr[1]))[0]} at "
               f"{max(far, key=lambda kr: max(kr[1], 1 / kr[1]))[1]:.2f}x)" if far else ""),
        ]  # fmt: skip
    for name, meta, rows in ((names[0], meta_a, rows_a), (names[1], meta_b, rows_b)):
        ok = [r for r in rows if r.status == "ok"]
        un, n_ok = _fraction(ok, lambda r: r.unstable)
        flagged, n = _fraction(rows, lambda r: r.contended or r.drifted)
        state = meta.get("machine_state") or {}
        load = (state.get("load_average") or ["?"])[0]
        canary = meta.get("canary") or {}
        lines.append(
            f"- {name}: {un}/{n_ok} ok rows unstable ({100 * un / max(n_ok, 1):.0f}%), "
            f"{flagged}/{n} rows contended or drifted ({100 * flagged / max(n, 1):.0f}%), "
            f"sweep {_sweep_s(meta)}, load {load} at start" + (f", canary at start {canary}" if canary else "")
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--out", help="also write the summary to this markdown file")
    args = parser.parse_args(argv)
    try:
        text = summary(load_run(args.run_a), load_run(args.run_b), (args.run_a, args.run_b))
    except ResultsError as e:
        print(f"rerun_agreement: {e}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
