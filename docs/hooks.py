"""mkdocs hook: the figures of the committed runs join the site at their repository paths.

A page links ``results/reference-cpu/plots/forms-numpy.svg`` and the figure is the one in the
repository, never a copy kept under ``docs/`` that could drift from its run.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = Path(str(config.config_file_path)).parent
    for figure in sorted(root.glob("results/*/plots/*.svg")):
        path = figure.relative_to(root).as_posix()
        files.append(File(path, src_dir=str(root), dest_dir=str(config.site_dir), use_directory_urls=False))
    return files
