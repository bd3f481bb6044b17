"""Writing a run's files so that readers see the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from suite.results.schema import ResultsError


def prepare_folder(out: Path) -> None:
    """Create ``out`` if needed and prove it writable; ResultsError in one line if not."""
    if out.exists() and not out.is_dir():
        raise ResultsError(f"output folder {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".causal-bench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ResultsError(f"cannot write to output folder {out}: {e.strerror or e}") from None


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


