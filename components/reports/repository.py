"""The repository of reports: every ``<dataset>/<night>/report.json`` under the reports folder.

Listed newest night first; *recent* is the newest :data:`RECENT` reports, split
into those with alarms and those without.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

__all__ = ["list_reports", "select", "render_index", "RECENT", "VIEWS"]

#: How many reports "recent" holds.
RECENT = 20
#: The repository's views: path suffix -> (title, filter).
VIEWS = {
    "": "Every report",
    "recent": "Recent reports",
    "recent-with-alarms": "Recent reports with alarms",
    "recent-without-alarms": "Recent reports without alarms",
}

_NAME = re.compile(r"^[a-z0-9_-]+$")
_NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def list_reports(reports_dir: str | Path, base_url: str = "") -> list[dict]:
    """Every report: ``{"dataset", "night", "alarms" (count), "frames", "url"}``, newest night first."""
    root = Path(reports_dir)
    found = []
    if not root.is_dir():
        return found
    for summary in root.glob("*/*/report.json"):
        night_dir = summary.parent
        dataset, night = night_dir.parent.name, night_dir.name
        if not (_NAME.match(dataset) and _NIGHT.match(night)):
            continue
        try:
            report = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being written, or damaged: not listed
        found.append({
            "dataset": dataset, "night": night, "alarms": len(report.get("alarms") or []),
            "frames": report.get("frames"), "url": f"{base_url.rstrip('/')}/reports/{dataset}/{night}/",
        })
    found.sort(key=lambda r: (r["night"], r["dataset"]), reverse=True)
    return found


def select(reports: list[dict], view: str, limit: int = RECENT) -> list[dict]:
    """The reports of a view of :data:`VIEWS`."""
    if view == "":
        return reports
    recent = reports[:limit]
    if view == "recent":
        return recent
    if view == "recent-with-alarms":
        return [r for r in recent if r["alarms"]]
    if view == "recent-without-alarms":
        return [r for r in recent if not r["alarms"]]
    raise KeyError(view)


def render_index(title: str, reports: list[dict]) -> str:
    """A plain HTML page listing ``reports`` with links to each and to the other views."""
    views = " · ".join(
        f"<a href='/reports/{path}'>{html.escape(name)}</a>" if path else f"<a href='/reports'>{html.escape(name)}</a>"
        for path, name in VIEWS.items()
    )
    rows = "".join(
        f"<tr><td><a href='{html.escape(r['url'], quote=True)}'>{html.escape(r['night'])}</a></td>"
        f"<td>{html.escape(r['dataset'])}</td><td>{r['frames'] if r['frames'] is not None else ''}</td>"
        f"<td class='{'bad' if r['alarms'] else 'good'}'>{r['alarms']}</td></tr>"
        for r in reports
    ) or "<tr><td colspan='4'>No report yet.</td></tr>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>QuickAnalysis · {html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:24px}table{border-collapse:collapse}"
        "td,th{padding:4px 10px;border-bottom:1px solid #d1d9e0;text-align:left}"
        ".bad{color:#a40e26;font-weight:600}.good{color:#116329}a{color:#0969da}"
        f"</style></head><body><h1>{html.escape(title)}</h1><p>{views}</p>"
        "<table><tr><th>night</th><th>dataset</th><th>frames</th><th>alarms</th></tr>"
        f"{rows}</table></body></html>"
    )
