"""The machines a run holds, by fingerprint: one for a local run, several for a fleet run or a merge.

A run's metadata describes its machines in ``meta["machines"]``: fingerprint ->
``{"machine": machine_info(), "ceilings": {device: fields}, "nodes": [...]}``.
``meta["machine"]`` stays what the one-machine tools read (``compare``,
``history``): the machine itself when there is one, else a stand-in whose
fingerprint joins all of theirs, so a run of several machines is never taken for
a run of one of them. Runs written before fleets (no ``machines``) hold the one
machine of ``meta["machine"]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from suite.machine import fingerprint, machine_fingerprint


def run_machines(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Fingerprint -> {machine, ceilings, ...} of every machine the run's rows were measured on."""
    stored = meta.get("machines")
    if isinstance(stored, dict) and stored:
        return {str(fp): dict(entry) for fp, entry in stored.items()}
    fp = machine_fingerprint(meta)
    if fp is None:
        return {}
    return {fp: {"machine": dict(meta["machine"]), "ceilings": dict(meta.get("ceilings") or {})}}


def combined_fingerprint(fingerprints: Iterable[str]) -> str:
    """The fingerprint of a run of several machines: theirs, sorted, joined by ``+``."""
    return "+".join(sorted(set(fingerprints)))


def checked_fingerprint(entry: Mapping[str, Any]) -> str | None:
    """The fingerprint a stored machine description hashes to (None without one)."""
    info = entry.get("machine")
    return fingerprint(dict(info)) if isinstance(info, dict) else None


def with_machines(meta: dict[str, Any], machines: Mapping[str, dict[str, Any]]) -> None:
    """Store ``machines`` in ``meta``, with ``machine`` and ``ceilings`` for the one-machine tools."""
    if not machines:
        return
    meta["machines"] = dict(machines)
    if len(machines) == 1:
        entry = next(iter(machines.values()))
        meta["machine"] = entry["machine"]
        meta["ceilings"] = entry.get("ceilings") or {}
        return
    meta["machine"] = {
        "fingerprint": combined_fingerprint(machines),
        "cpu_model": f"{len(machines)} machines ({', '.join(label(e) for e in machines.values())})",
    }
    meta.pop("ceilings", None)  # each machine's own are under meta["machines"]


def label(entry: Mapping[str, Any]) -> str:
    """A machine as a person names it: CPU, cores and GPU."""
    m = entry.get("machine") or {}
    gpu = f", {m['gpu_name']}" if m.get("gpu_name") else ""
    return f"{m.get('cpu_model', '?')}, {m.get('cpu_count', '?')} cores{gpu}"
