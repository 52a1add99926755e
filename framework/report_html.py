"""``report.html``: a run's (or a sweep's) verdict, headline table and key figures on one page that
MLflow's artifact viewer shows inline.

The viewer loads the page into a sandboxed iframe from a blob URL, so a relative path to another
artifact resolves nowhere: figures are embedded as base64 ``data:`` URIs, and links are printed as
text beside the anchor (the sandbox may block navigating out of it)."""
from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from framework.health import Finding

#: the figures a report embeds, most telling first; any others are named, not embedded
KEY_FIGURES = ["tuning_curves", "population_vector", "rates", "firing_rates", "tradeoff",
               "response_curves", "thresholds", "raster"]
#: at most this many figures are embedded (each is ~50-100 kB of base64)
MAX_FIGURES = 4

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 16px; color: #1f2933; max-width: 1100px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f5f7; }
.ok { color: #116329; } .warn { color: #9a6700; } .failed { color: #b42318; }
.verdict { font-size: 16px; font-weight: 600; }
code { background: #f3f5f7; padding: 1px 4px; border-radius: 3px; }
figure { margin: 8px 0 16px; } figure img { max-width: 100%; border: 1px solid #e5e7eb; }
figcaption { color: #57606a; font-size: 12px; }
"""


def esc(value: object) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value))


def table(head: Sequence[str], rows: Iterable[Sequence[object]], numbers: bool = True) -> str:
    """``rows`` under ``head``; with ``numbers``, cells after the first that look like numbers
    align right (a config's values do not: they are settings, read as text)."""
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell)
            number = numbers and i > 0 and text.replace(".", "", 1).replace("-", "", 1).replace(
                "e", "", 1).replace("+", "", 1).isdigit()
            cells.append(f"<td class=\"num\">{esc(text)}</td>" if number
                         else f"<td>{cell if isinstance(cell, Raw) else esc(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


class Raw(str):
    """A table cell that is already HTML (a link)."""


def link(url: str, text: str) -> Raw:
    """An anchor with its URL shown (the viewer's sandbox may not follow it)."""
    return Raw(f"<a href=\"{esc(url)}\" target=\"_blank\" rel=\"noopener\">{esc(text)}</a>")


def verdict_section(found: list[Finding] | None, error: str | None = None) -> str:
    """The verdict: FAILED with its error, ``ok``, or each finding split into what was found and
    what to do (a finding's message ends with its remedy after the last ``: ``)."""
    if error:
        return (f"<p class=\"verdict failed\">FAILED</p><p>{esc(error)}</p>"
                "<p>The run ended before its analyses; fix what the error names and run again.</p>")
    if found is None:
        return ""
    if not found:
        return "<p class=\"verdict ok\">Verdict: ok</p><p>No health check fired.</p>"
    rows = []
    for f in found:
        what, _, todo = f.message.rpartition(": ")
        rows.append([f.check, what or todo, todo if what else ""])
    return (f"<p class=\"verdict warn\">Verdict: warn ({len(found)} "
            f"check{'s' if len(found) > 1 else ''})</p>"
            + table(["check", "found", "what to do / what it means"], rows))


def figures_section(folder: Path | None) -> str:
    """The key figures under ``folder`` (``plots/``) embedded, the rest named."""
    if folder is None or not folder.is_dir():
        return ""
    pngs = {p.stem: p for p in sorted(folder.glob("*.png"))}
    order = [n for n in KEY_FIGURES if n in pngs] + [n for n in pngs if n not in KEY_FIGURES]
    shown, rest = order[:MAX_FIGURES], order[MAX_FIGURES:]
    parts = ["<h2>Key figures</h2>"]
    for name in shown:
        data = base64.b64encode(pngs[name].read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt=\"{esc(name)}\" src=\"data:image/png;base64,{data}\">"
                     f"<figcaption>plots/{esc(name)}.png</figcaption></figure>")
    if rest:
        parts.append("<p>More figures in the run's artifacts: "
                     + ", ".join(f"<code>plots/{esc(n)}.png</code>" for n in rest) + "</p>")
    return "\n".join(parts) if shown else ""


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    """A whole page: ``title``, ``subtitle`` (HTML) and ``(heading, html)`` sections; a section
    with an empty body is left out, one with an empty heading is placed as it is."""
    body = [f"<h1>{esc(title)}</h1><p>{subtitle}</p>"]
    for heading, content in sections:
        if content:
            body.append((f"<h2>{esc(heading)}</h2>" if heading else "") + content)
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
