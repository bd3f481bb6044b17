"""The dashboard page: one self-contained HTML file, plotly.js inline, the data embedded once.

The page works from ``file://`` with no network: plotly.js is written into it
(``plotly.offline.get_plotlyjs``), the figures are JSON in a ``<script>`` element,
and a case picker (a ``<select>``) swaps which case the two charts show with
``Plotly.react``, so 180 cases cost one pair of charts, not 180.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suite.results import ResultsError, prepare_folder, write_atomic
from suite.track.config import CompareConfig
from suite.track.dashboard import DEFAULT_LAST, build_data, load_inputs

PAGE_NAME = "index.html"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
header p, footer { color: #555; font-size: 0.9rem; }
select { font-family: ui-monospace, monospace; font-size: 0.9rem; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.85rem; }
td, th { padding: 0.15rem 0.6rem; border-bottom: 1px solid #ddd; text-align: left; }
.chart { width: 100%; min-height: 380px; }
"""

# The glue between the picker and plotly: no drawing of its own.
SCRIPT = """
const DATA = JSON.parse(document.getElementById("cb-data").textContent);
const CONFIG = {displaylogo: false, responsive: true};
const pick = document.getElementById("cb-case");
function show(key) {
  const c = DATA.cases[key];
  if (!c) return;
  pick.value = key;
  Plotly.react("cb-trend", c.trend.data, c.trend.layout, CONFIG);
  const g = DATA.groups[c.group];
  Plotly.react("cb-backends", g.data, g.layout, CONFIG);
  try { history.replaceState(null, "", "#" + encodeURIComponent(key)); } catch (e) { /* some file:// pages refuse */ }
}
pick.addEventListener("change", () => show(pick.value));
document.querySelectorAll("a[data-case]").forEach(a => a.addEventListener("click", e => {
  e.preventDefault();
  show(a.dataset.case);
}));
const asked = decodeURIComponent(location.hash.slice(1));
show(DATA.cases[asked] ? asked : DATA.first);
"""


def plotly_js() -> str:
    """The plotly.js bundle that ships inside the plotly package (``pip install .[dashboard]``)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ResultsError("the dashboard needs plotly: pip install 'causal-bench[dashboard]'") from None
    return str(get_plotlyjs())


def _embed(data: Any) -> str:
    # "</" would end the <script> element early; JSON reads "<\\/" as "</".
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _machines(data: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(m['label'])}</td><td>{m['runs']}</td><td>{m['first']}</td><td>{m['last']}</td></tr>"
        for m in data["machines"]
    )
    head = "<tr><th>machine (fingerprint)</th><th>runs</th><th>first</th><th>last</th></tr>"
    return f"<table>{head}{rows}</table>"


def _steps(data: dict[str, Any], shown: int = 30) -> str:
    steps = data["steps"]
    if not steps:
        return "<p>No step changes between consecutive runs of one machine.</p>"
    rows = "".join(
        f'<tr><td><a href="#" data-case="{html.escape(s["case"])}">{html.escape(s["case"])}</a></td>'
        f"<td>{html.escape(s['step'])} {s['ratio']}</td><td>{s['when']}</td><td>{html.escape(s['machine'])}</td></tr>"
        for s in steps[:shown]
    )
    more = f"<p>{len(steps) - shown} older step changes not listed.</p>" if len(steps) > shown else ""
    head = "<tr><th>case</th><th>step</th><th>run</th><th>machine</th></tr>"
    return f"<table>{head}{rows}</table>{more}"


def render_page(data: dict[str, Any], title: str = "causal-bench dashboard") -> str:
    """The whole page. Zero runs give a page that says so, with no charts."""
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style>'
    if not data["cases"]:
        body = (
            f"<h1>{html.escape(title)}</h1><p>No runs yet: {data['runs']} runs found, no timed cases. "
            "Record one with <code>python -m suite run --out history/RUN</code> and build this page again.</p>"
        )
        return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>\n"
    options = "".join(f'<option value="{html.escape(k)}">{html.escape(k)}</option>' for k in data["cases"])
    body = f"""
<header><h1>{html.escape(title)}</h1>
<p>Runs: {data["runs"]}. Cases: {len(data["cases"])}. Machines: {len(data["machines"])}. One series per machine
fingerprint: runs of different machines are never joined. Error bars: lowest to highest round median.
Crosses: measured while the machine was contended or had drifted (drawn apart, no step judged).
Triangles: a step between consecutive runs (the test of <code>python -m suite history</code>).</p></header>
<label for="cb-case">Case </label><select id="cb-case">{options}</select>
<div id="cb-trend" class="chart"></div>
<div id="cb-backends" class="chart"></div>
<h2>Step changes</h2>{_steps(data)}
<h2>Machines</h2>{_machines(data)}
<footer><p>Built by <code>python -m suite dashboard</code> from stored runs; nothing is re-run.</p></footer>
<script>{plotly_js()}</script>
<script type="application/json" id="cb-data">{_embed(data)}</script>
<script>{SCRIPT}</script>
"""
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>\n"


def write_dashboard(
    inputs: Sequence[Path], out: Path, config: CompareConfig | None = None, last: int = DEFAULT_LAST
) -> tuple[Path, dict[str, Any]]:
    """Read the runs, write ``out/index.html``; the page's path and its data. Raises ResultsError."""
    data = build_data(load_inputs(inputs), config, last)
    prepare_folder(out)
    page = out / PAGE_NAME
    write_atomic(page, render_page(data))
    page.chmod(0o644)  # readable by the web server that publishes it
    return page, data
