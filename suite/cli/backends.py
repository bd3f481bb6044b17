"""``backends``: list the adapters, whether each can run here, and why not."""

from __future__ import annotations

import argparse
from typing import Any

from backends import REGISTRY, get_backend


def add_parser(sub: Any) -> None:
    sub.add_parser("backends", help="list backends, whether they can run here, and why not")


def run(args: argparse.Namespace) -> int:
    for name in REGISTRY:
        adapter = get_backend(name)
        avail = adapter.availability()
        where = adapter.device() if avail.ok else ""
        print(f"{name:<14} {'available' if avail.ok else 'unavailable':<12} {where or avail.reason}")
    return 0
