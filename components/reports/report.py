"""A night report folder: a PNG and a JSON file per plot, ``report.json`` and a self-contained ``index.html``.

Layout of ``<reports dir>/<dataset>/<night>/``:

* ``<plot>.png`` and ``<plot>.json``: ``{"description", "tag", "unit", "x": [ISO times],
  "y": [values], "frames": [keys]}`` -- the plotted data, straight from the history;
* ``report.json``: ``{"dataset", "night", "frames", "alarms": [{"name", "raised",
  "cleared", "frames"}], "metrics": {metric: {"median", "p10", "p90"}}}``;
* ``index.html``: the plots, the alarm list and a table of the frames with
  thumbnails (all as ``data:`` URIs, so the file stands alone), each frame
  linking to the dashboard at ``/?image=<key>``.

Plots are drawn with matplotlib's Agg canvas (no pyplot state, no display).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import numpy as np

from components.reports.alarms import iso
from components.sources.history import METRICS

__all__ = ["build_report", "write_report", "plot_data", "metric_summary", "thumbnail_png", "PLOT_INFO",
           "report_folder"]

#: (description, unit) of each metric a report can plot.
PLOT_INFO = {
    "background": ("Sky background level (sigma-clipped median)", "ADU"),
    "background_rms": ("Sky background noise (RMS)", "ADU"),
    "saturated_fraction": ("Fraction of saturated pixels", ""),
    "star_count": ("Stars detected", "stars"),
    "fwhm_px": ("Median stellar FWHM (Moffat fits)", "px"),
    "fwhm_arcsec": ("Median stellar FWHM, the seeing (Moffat fits)", "arcsec"),
    "hfr_px": ("Median half-flux radius", "px"),
    "elongation": ("Median star elongation (a/b)", ""),
    "pixel_scale": ("Pixel scale", "arcsec/px"),
}

# matplotlib's text layout and font cache are not documented as thread-safe.
_draw_lock = threading.Lock()


def report_folder(reports_dir: str | Path, dataset: str, night: str) -> Path:
    return Path(reports_dir) / dataset / night


def _value(row: dict, metric: str):
    value = row.get(metric)
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return int(value) if metric == "star_count" else value


def plot_data(rows: list[dict], metric: str) -> dict:
    """The JSON of one plot: the metric of every frame of the night, in observing order."""
    description, unit = PLOT_INFO[metric]
    return {
        "description": description,
        "tag": metric,
        "unit": unit,
        "x": [iso(row["observed"]) for row in rows],
        "y": [_value(row, metric) for row in rows],
        "frames": [row["key"] for row in rows],
    }


def metric_summary(rows: list[dict]) -> dict:
    """Median, 10th and 90th percentile of each metric over the night (None without values)."""
    summary = {}
    for metric in METRICS:
        values = np.asarray([v for v in (_value(row, metric) for row in rows) if v is not None], dtype=float)
        if values.size:
            p10, median, p90 = np.percentile(values, [10, 50, 90])
            summary[metric] = {"median": float(median), "p10": float(p10), "p90": float(p90)}
        else:
            summary[metric] = {"median": None, "p10": None, "p90": None}
    return summary


def _draw(data: dict, alarms: list[dict], title: str) -> bytes:
    from datetime import datetime

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    times = [datetime.fromisoformat(x.replace("Z", "+00:00")) for x in data["x"]]
    values = [np.nan if y is None else y for y in data["y"]]
    with _draw_lock:
        figure = Figure(figsize=(7.0, 2.6), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        key_time = dict(zip(data["frames"], times))
        for alarm in alarms:
            marked = [key_time[key] for key in alarm["frames"] if key in key_time]
            if marked:
                axes.axvspan(min(marked), max(marked), color="#f85149", alpha=0.18, lw=0)
        axes.plot(times, values, "-o", color="#1f6feb", markersize=3, linewidth=1)
        axes.set_title(title, fontsize=10, loc="left")
        if data["unit"]:
            axes.set_ylabel(data["unit"], fontsize=9)
        axes.xaxis.set_major_formatter(DateFormatter("%H:%M"))
        axes.set_xlabel("UTC", fontsize=9)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png")
    return out.getvalue()


def thumbnail_png(data: np.ndarray, size: int = 96) -> bytes:
    """A small grey PNG of a frame: block maxima (stars survive the shrinking), sky median to 99.9 %."""
    from PIL import Image as PILImage

    data = np.asarray(data)
    step = max(1, int(math.ceil(max(data.shape[:2]) / size)))
    rows, cols = (data.shape[0] // step) * step, (data.shape[1] // step) * step
    if rows and cols:
        blocks = np.asarray(data[:rows, :cols], dtype=np.float32).reshape(rows // step, step, cols // step, step)
        small = np.nanmax(blocks, axis=(1, 3)) if step > 1 else blocks[:, 0, :, 0]
    else:
        small = np.asarray(data, dtype=np.float32)
    finite = small[np.isfinite(small)]
    low, high = np.percentile(finite, [50.0, 99.9]) if finite.size else (0.0, 1.0)
    scaled = np.clip((np.nan_to_num(small, nan=low) - low) / max(high - low, 1e-12), 0, 1)
    scaled = np.sqrt(scaled)  # a mild stretch: faint stars stay visible
    out = io.BytesIO()
    PILImage.fromarray((scaled * 255).astype(np.uint8), mode="L").save(out, format="PNG", optimize=True)
    return out.getvalue()


def _atomic_write(path: Path, content: bytes) -> None:
    """Write through a temporary file so a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _format(value, metric: str) -> str:
    if value is None:
        return "–"
    if metric == "star_count":
        return str(int(value))
    if metric == "saturated_fraction":
        return f"{value:.1e}"
    return f"{value:.2f}"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2328;
       background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 4px 0; } h2 { font-size: 17px; margin: 24px 0 8px 0; }
.sub { color: #59636e; } .badge { display: inline-block; padding: 2px 8px; border-radius: 10px;
  font-size: 13px; } .bad { background: #ffebe9; color: #a40e26; } .good { background: #dafbe1; color: #116329; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; } .plots img { width: 560px; max-width: 100%;
  border: 1px solid #d1d9e0; border-radius: 6px; }
table { border-collapse: collapse; font-size: 13px; } th, td { padding: 3px 8px; border-bottom: 1px solid #d1d9e0;
  text-align: right; } th { background: #f6f8fa; } td.name, th.name { text-align: left; }
tr.alarm td { background: #fff5f5; } td img { width: 64px; height: auto; display: block; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
"""


def _index_html(report: dict, plots: dict[str, bytes], rows: list[dict], thumbnails: dict[str, bytes],
                dashboard: str, links: dict[str, str]) -> str:
    dataset, night = html.escape(report["dataset"]), html.escape(report["night"])
    alarms = report["alarms"]
    alarmed = {key: alarm["name"] for alarm in alarms for key in alarm["frames"]}
    badge = (f'<span class="badge bad">{len(alarms)} alarm{"s" if len(alarms) != 1 else ""}</span>'
             if alarms else '<span class="badge good">no alarm</span>')
    first = iso(rows[0]["observed"]) if rows else None
    last = iso(rows[-1]["observed"]) if rows else None
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>QuickAnalysis report · {dataset} · {night}</title><style>{_CSS}</style></head><body>",
        f"<h1>Night report · {dataset} · {night} {badge}</h1>",
        f"<div class='sub'>{report['frames']} frames"
        + (f", {html.escape(first)} – {html.escape(last)}" if first else "") + "</div>",
    ]
    if links:
        parts.append("<div class='sub'>" + " · ".join(
            f"<a href='{html.escape(url, quote=True)}'>{html.escape(label)}</a>" for label, url in links.items()
        ) + "</div>")
    parts.append("<h2>Alarms</h2>")
    if alarms:
        parts.append("<table><tr><th class='name'>alarm</th><th>raised (UTC)</th><th>cleared (UTC)</th>"
                     "<th>frames</th></tr>")
        for alarm in alarms:
            frames = ", ".join(
                f"<a href='{html.escape(dashboard + quote(key, safe='/'), quote=True)}'>"
                f"{html.escape(key.rpartition('/')[2])}</a>" for key in alarm["frames"][:20]
            ) + (" …" if len(alarm["frames"]) > 20 else "")
            parts.append(
                f"<tr class='alarm'><td class='name'>{html.escape(alarm['name'])}</td>"
                f"<td>{html.escape(alarm['raised'] or '')}</td><td>{html.escape(alarm['cleared'] or 'still raised')}"
                f"</td><td class='name'>{frames}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>None: every rule held all night.</p>")
    parts.append("<h2>Plots</h2><div class='plots'>")
    for metric, png in plots.items():
        parts.append(f"<img alt='{html.escape(metric)}' src='{_data_uri(png)}'>")
    parts.append("</div><h2>Frames</h2><table><tr><th></th><th class='name'>frame</th><th>time (UTC)</th>")
    metrics = list(plots)
    parts += [f"<th>{html.escape(m)}</th>" for m in metrics]
    parts.append("<th class='name'>alarm</th></tr>")
    for row in rows:
        key = row["key"]
        link = html.escape(dashboard + quote(key, safe="/"), quote=True)
        thumb = thumbnails.get(key)
        image = f"<a href='{link}'><img alt='' src='{_data_uri(thumb)}'></a>" if thumb else ""
        cells = "".join(f"<td>{_format(_value(row, m), m)}</td>" for m in metrics)
        parts.append(
            f"<tr{' class=alarm' if key in alarmed else ''}><td>{image}</td>"
            f"<td class='name'><a href='{link}'>{html.escape(row.get('name') or key)}</a></td>"
            f"<td>{html.escape((iso(row['observed']) or '')[11:19])}</td>{cells}"
            f"<td class='name'>{html.escape(alarmed.get(key, ''))}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "".join(parts)


def build_report(
    dataset: str,
    night: str,
    rows: list[dict],
    alarms: list[dict],
    plots: list[str],
    thumbnail: Callable[[str], np.ndarray | None] | None = None,
    dashboard_url: str = "/",
    links: dict[str, str] | None = None,
) -> tuple[dict, dict[str, bytes]]:
    """The files of a report (name -> bytes) and its ``report.json`` content.

    Parameters
    ----------
    rows : list of dict
        The night's quality history rows (any order; sorted by observation time).
    alarms : list of dict
        The night's alarms (:func:`components.reports.alarms.replay`).
    thumbnail : callable, optional
        ``key -> 2-D array`` of a frame for its thumbnail (None or an
        exception: no thumbnail).
    dashboard_url : str
        Base of the frame links (``<dashboard_url>?image=<key>``).
    """
    rows = sorted(rows, key=lambda row: (float(row["observed"]), row["key"]))
    report = {
        "dataset": dataset,
        "night": night,
        "frames": len(rows),
        "alarms": [{"name": a["name"], "raised": a["raised"], "cleared": a["cleared"], "frames": list(a["frames"])}
                   for a in alarms],
        "metrics": metric_summary(rows),
    }
    files: dict[str, bytes] = {}
    pngs = {}
    for metric in plots:
        data = plot_data(rows, metric)
        related = [a for a in alarms if a.get("metric") == metric]
        pngs[metric] = _draw(data, related, f"{metric}: {data['description']}")
        files[f"{metric}.png"] = pngs[metric]
        files[f"{metric}.json"] = json.dumps(data, indent=1).encode()
    thumbnails = {}
    if thumbnail is not None:
        for row in rows:
            try:
                array = thumbnail(row["key"])
            except Exception:  # a frame gone or unreadable since it was measured: no thumbnail
                array = None
            if array is not None:
                thumbnails[row["key"]] = thumbnail_png(array)
    dashboard = dashboard_url.rstrip("/") + "/?image="
    files["report.json"] = json.dumps(report, indent=1).encode()
    files["index.html"] = _index_html(report, pngs, rows, thumbnails, dashboard, links or {}).encode()
    return report, files


def write_report(folder: str | Path, files: dict[str, bytes]) -> Path:
    """Write a report's files into ``folder`` (created; each file replaced atomically, index.html last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == "index.html"):
        _atomic_write(folder / name, files[name])
    return folder
