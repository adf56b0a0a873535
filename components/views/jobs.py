"""The Jobs pane: start a job for the session's folder or night, follow its progress, cancel it.

The pane talks to a *jobs service* handed in by the app (components never
import app): any object with ``submit(body) -> job``, ``list_jobs() -> [job]``,
``cancel(job_id) -> job`` and ``dashboard_link`` (the Dask dashboard's URL or
None). Jobs are the public views of :func:`components.jobs.public_view`. The
pane reads them again when the process's bus announces a ``job`` event (a job
submitted, started, advanced, ended), on the page's own loop: no polling, so
an open tab costs nothing while no job runs.
"""

from __future__ import annotations

import html
import logging

import panel as pn
import param

from components.events import bus
from components.views.state import Session
from components.views.style import STYLESHEET

__all__ = ["JobsPane", "job_row_html", "JOB_KINDS"]

log = logging.getLogger("quickanalysis.views")

#: Label -> kind of the jobs the pane starts.
JOB_KINDS = {
    "Quality of every frame": "quality",
    "Time-lapse movie (MP4)": "movie",
    "Statistics of the box (CSV)": "export",
    "Night report": "report",
}
#: Jobs shown (the newest).
MAX_JOBS = 12

_STYLE = """
.qa-job { font-size: 12px; padding: 4px 0; border-bottom: 1px solid rgba(127,127,127,0.2); }
.qa-job-head { display: flex; gap: 6px; align-items: baseline; }
.qa-job-kind { font-weight: 600; }
.qa-job-state { color: #8b949e; }
.qa-job-state-failed { color: #f85149; }
.qa-job-state-complete { color: #3fb950; }
.qa-job-bar { width: 100%; height: 10px; }
.qa-job-error { color: #f85149; }
"""


def _eta_text(seconds) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"ETA {seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"ETA {seconds // 60} min {seconds % 60:02d} s"
    return f"ETA {seconds} s"


def job_row_html(job: dict) -> str:
    """One job: kind, folder and night, state, a progress bar with percent and ETA, its result."""
    params = job.get("params") or {}
    where = params.get("s3_directory") or params.get("dataset") or ""
    if params.get("night"):
        where += f" · {params['night']}"
    percent = job.get("percent")
    state = job["state"]
    done, total = job.get("done") or 0, job.get("total")
    progress = (
        f'<progress class="qa-job-bar" max="100" value="{percent:.2f}"></progress>'
        if percent is not None else '<progress class="qa-job-bar" max="100"></progress>'
    )
    counts = f"{done}/{total}" if total is not None else ""
    percent_text = f"{percent:.0f} %" if percent is not None else ""
    parts = [
        f'<div class="qa-job" data-job="{html.escape(job["id"])}" data-state="{state}" '
        f'data-percent="{"" if percent is None else f"{percent:.2f}"}">',
        '<div class="qa-job-head">',
        f'<span class="qa-job-kind">{html.escape(job["kind"])}</span>',
        f'<span>{html.escape(where)}</span><span style="flex:1"></span>',
        f'<span class="qa-job-state qa-job-state-{state}">{state}</span></div>',
        progress,
        '<div class="qa-job-head">',
        f'<span class="qa-job-percent">{percent_text}</span><span>{counts}</span>',
        f'<span class="qa-job-eta">{_eta_text(job.get("eta_seconds")) if state == "running" else ""}</span>',
        '<span style="flex:1"></span>',
    ]
    if job.get("result_url"):
        parts.append(f'<a class="qa-job-result" href="{html.escape(job["result_url"])}" target="_blank">result</a>')
    parts.append("</div>")
    if job.get("error"):
        parts.append(f'<div class="qa-job-error">{html.escape(job["error"])}</div>')
    parts.append("</div>")
    return "".join(parts)


class JobsPane(pn.viewable.Viewer):
    """Jobs of the server: start one for the session's folder (or night), follow, cancel, download."""

    session = param.ClassSelector(class_=Session)
    service = param.Parameter(default=None, doc="The jobs service (submit, list_jobs, cancel, dashboard_link).")

    def __init__(self, **params):
        super().__init__(**params)
        self.kind = pn.widgets.Select(label="Job", options=JOB_KINDS, width=200)
        self.night = pn.widgets.TextInput(
            label="Night (YYYY-MM-DD, optional)", placeholder="every frame of the folder", width=200,
        )
        self.start_button = pn.widgets.Button(label="Start", color="primary", width=80, margin=(24, 10, 5, 10))
        self.start_button.on_click(self._start)
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[STYLESHEET], margin=(0, 10))
        self.dashboard = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        # Every model is made here, once: models made later in a periodic callback
        # were given Panel's CDN stylesheets (the page then loaded them from the internet).
        self.list = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[STYLESHEET, _STYLE], margin=(0, 4))
        self.cancel_select = pn.widgets.Select(label="Running or pending", options={}, width=260)
        self.cancel_button = pn.widgets.Button(label="Cancel", color="default", variant="outline",
                                               width=80, margin=(24, 10, 5, 10))
        self.cancel_button.on_click(lambda event: self.cancel(self.cancel_select.value) if self.cancel_select.value else None)
        self._unsubscribe = None
        self._refresh_due = False
        self.refresh()
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            self._unsubscribe = bus().subscribe(self._on_job_event, "job")
            pn.state.on_session_destroyed(self._destroyed)

    # ---------------------------------------------------------------- actions

    def folder(self) -> str:
        """The top folder of the session (its folder, else the frame shown's)."""
        session = self.session
        if session is None:
            return ""
        if session.directory:
            return session.directory.split("/")[0]
        if session.key and "/" in session.key:
            return session.key.split("/")[0]
        return ""

    def job_body(self) -> dict:
        """The POST /jobs body for the chosen kind, the session's folder, night, box and display."""
        kind, folder, night = self.kind.value, self.folder(), self.night.value.strip() or None
        if not folder:
            raise ValueError("choose a folder (or a frame) first")
        if kind == "report":
            body = {"kind": "report", "dataset": folder, "night": night}
        else:
            body = {"kind": kind, "s3_directory": folder}
            if night:
                body["night"] = night
        session = self.session
        if kind == "export" and session.box is not None:
            body["subregion"] = dict(zip(("x0", "y0", "x1", "y1"), session.box))
        if kind == "movie":
            interval = session.interval if session.interval != "manual" else "zscale"
            body.update(interval=interval, stretch=session.stretch, cmap=session.cmap)
        return body

    def _start(self, event=None) -> None:
        try:
            job = self.service.submit(self.job_body())
        except Exception as error:  # a refused body is the observer's to fix: say why
            self.message.object = f'<span class="qa-job-error">{html.escape(_message(error))}</span>'
            return
        self.message.object = f'Started {html.escape(job["kind"])} job {html.escape(job["id"])}.'
        self.refresh()

    def cancel(self, job_id: str) -> None:
        try:
            self.service.cancel(job_id)
        except Exception as error:
            self.message.object = f'<span class="qa-job-error">{html.escape(_message(error))}</span>'
        self.refresh()

    # ---------------------------------------------------------------- live

    def refresh(self) -> None:
        """Read the jobs and show them (rows are made once per job, then updated in place)."""
        if self.service is None:
            return
        try:
            jobs = self.service.list_jobs()[:MAX_JOBS]
        except Exception:
            log.exception("reading the jobs failed")
            return
        text = "".join(job_row_html(job) for job in jobs) or '<span class="qa-hint">No job yet.</span>'
        if self.list.object != text:
            self.list.object = text
        active = {f'{job["kind"]} {job["id"]} ({job["state"]})': job["id"]
                  for job in jobs if job["state"] in ("pending", "running")}
        if dict(self.cancel_select.options) != active:
            self.cancel_select.options = active
        self.cancel_button.disabled = not active
        link = getattr(self.service, "dashboard_link", None)
        text = f'<a class="qa-dask-dashboard" href="{html.escape(link)}" target="_blank">Dask dashboard</a>' if link else ""
        if self.dashboard.object != text:
            self.dashboard.object = text

    def _on_job_event(self, event) -> None:
        """A job changed (in the publisher's thread): read the jobs once on the page's loop.

        A burst of progress events while a refresh is already due adds none.
        """
        if self._refresh_due:
            return
        self._refresh_due = True

        def run():
            self._refresh_due = False
            self.refresh()

        scheduler = getattr(self.session, "scheduler", None)
        if scheduler is None:
            run()
        else:
            scheduler(run)

    def _destroyed(self, session_context) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def __panel__(self):
        return pn.Column(
            pn.Row(self.kind, self.night, self.start_button, sizing_mode="stretch_width"),
            self.message,
            self.list,
            pn.Row(self.cancel_select, self.cancel_button, sizing_mode="stretch_width"),
            self.dashboard,
            sizing_mode="stretch_width",
        )


def _message(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):  # a pydantic ValidationError: its first problem, named
        try:
            first = errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        except Exception:
            pass
    return str(error)
