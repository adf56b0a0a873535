"""Job records, the runner's helpers, the jobs service's validation and the Jobs pane (no cluster needed)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import pytest

from components.core.synthetic import star_field, write_fits
from components.jobs import JobRecords, frames_of, night_window, public_view
from components.sources import FrameStore, ImageCache, LocalSource
from components.sources.history import QualityHistory


@pytest.fixture
def records(tmp_path) -> JobRecords:
    return JobRecords(tmp_path / "jobs" / "jobs.sqlite3")


def test_a_new_job_is_pending_with_no_progress(records):
    job = records.create("quality", {"s3_directory": "data"})
    view = public_view(job)
    assert view["state"] == "pending" and view["done"] == 0 and view["percent"] == 0
    assert view["eta_seconds"] is None and view["result_url"] is None and view["workers"] == []
    with pytest.raises(ValueError):
        records.create("nap", {})


def test_eta_comes_from_the_measured_rate(records):
    job = records.claim(records.create("quality", {})["id"])
    assert job["state"] == "running" and job["attempts"] == 1
    started = job["started"]
    record = records.update(job["id"], total=40, done=10)
    # 10 frames in 20 s: the 30 left take 60 s more.
    view = public_view(record, now=started + 20.0)
    assert view["percent"] == 25.0 and view["eta_seconds"] == 60.0
    assert public_view(records.update(job["id"], done=0), now=started + 5)["eta_seconds"] is None


def test_claim_refuses_a_job_no_longer_pending(records):
    job = records.create("export", {})
    records.finish_unless_finished(job["id"], "cancelled")
    assert records.claim(job["id"]) is None
    # A final state is never left: a late "complete" does not overwrite "cancelled".
    assert records.finish_unless_finished(job["id"], "complete", result_path="x")["state"] == "cancelled"
    assert records.get(job["id"])["result_path"] is None


def test_restart_requeues_running_jobs_and_keeps_pending_ones(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    records = JobRecords(path)
    running = records.claim(records.create("quality", {"n": 1})["id"])
    records.update(running["id"], total=5, done=3, workers=["tcp://127.0.0.1:1"])
    pending = records.create("movie", {"n": 2})
    done = records.claim(records.create("export", {"n": 3})["id"])
    records.finish_unless_finished(done["id"], "complete")
    records.close()
    again = JobRecords(path)  # the restarted server
    assert again.requeue() == [running["id"]]
    assert again.get(running["id"])["state"] == "pending" and again.get(running["id"])["done"] == 0
    assert again.next_pending()["id"] == running["id"]  # oldest first
    assert again.get(pending["id"])["state"] == "pending"
    assert again.get(done["id"])["state"] == "complete"


def test_night_is_noon_to_noon_utc(tmp_path):
    start, end = night_window("2026-11-20")
    assert start == datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    assert end == datetime(2026, 11, 21, 12, tzinfo=timezone.utc)
    folder = tmp_path / "data"
    folder.mkdir()
    times = {"evening.fits": datetime(2026, 11, 20, 23, tzinfo=timezone.utc),
             "dawn.fits": datetime(2026, 11, 21, 5, tzinfo=timezone.utc),
             "next.fits": datetime(2026, 11, 21, 13, tzinfo=timezone.utc),
             "before.fits": datetime(2026, 11, 20, 11, tzinfo=timezone.utc)}
    for name, when in times.items():
        write_fits(star_field((16, 16), n_stars=1, seed=1), folder / name)
        os.utime(folder / name, (when.timestamp(), when.timestamp()))
    store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**7))
    assert [f.key for f in frames_of(store, "data", "2026-11-20")] == ["data/evening.fits", "data/dawn.fits"]
    assert [f.key for f in frames_of(store, "data")] == [
        "data/before.fits", "data/evening.fits", "data/dawn.fits", "data/next.fits"]


# ---------------------------------------------------------------- service and pane


@pytest.fixture
def service(tmp_path):
    from app.jobs_service import JobsService
    from app.settings import Settings

    (tmp_path / "data").mkdir()
    write_fits(star_field((32, 32), n_stars=2, seed=3), tmp_path / "data" / "a.fits")
    settings = Settings(root=tmp_path, demo=False)
    store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**7),
                       allowed_directories=settings.s3_directories)
    # Not started: jobs stay pending, which is all the validation and the pane need.
    return JobsService(settings, store, QualityHistory(settings.history_path()))


def test_service_validates_and_queues(service):
    from pydantic import ValidationError

    from components.errors import InvalidRequest

    job = service.submit({"kind": "movie", "s3_directory": "data", "stretch": "asinh", "unknown": 1})
    assert job["state"] == "pending"
    assert job["params"] == {"s3_directory": "data", "interval": "zscale", "stretch": "asinh",
                             "cmap": "grey", "max_side": 720}
    with pytest.raises(InvalidRequest, match="s3_directory must be one of"):
        service.submit({"kind": "quality", "s3_directory": "nowhere"})
    with pytest.raises(ValidationError):
        service.submit({"kind": "export", "s3_directory": "data", "night": "2026-02-30"})
    assert service.cancel(job["id"])["state"] == "cancelled"
    assert [j["id"] for j in service.list_jobs()] == [job["id"]]


def test_jobs_pane_starts_follows_and_cancels(service, tmp_path):
    from components.views.jobs import JobsPane
    from components.views.state import Session

    session = Session(store=service.store)
    session.tick()
    pane = JobsPane(session=session, service=service)
    assert pane.folder() == "data"
    pane.kind.value = "export"
    session.box = (0.1, 0.2, 0.5, 0.6)
    pane._start()
    pane.kind.value, session.cmap, session.stretch = "movie", "viridis", "sqrt"
    pane.night.value = "2026-11-20"
    pane._start()
    jobs = service.list_jobs()
    assert [j["kind"] for j in jobs] == ["movie", "export"]
    assert jobs[1]["params"]["subregion"] == {"x0": 0.1, "y0": 0.2, "x1": 0.5, "y1": 0.6}
    assert jobs[0]["params"]["night"] == "2026-11-20" and jobs[0]["params"]["cmap"] == "viridis"
    assert pane.list.object.count('class="qa-job-bar"') == 2 and 'data-state="pending"' in pane.list.object
    assert set(pane.cancel_select.options.values()) == {jobs[0]["id"], jobs[1]["id"]}
    # Progress shows as it is recorded: the bar's value, the percent and the ETA.
    service.records.claim(jobs[0]["id"])
    service.records.update(jobs[0]["id"], total=4, done=1, started=time.time() - 3)
    pane.refresh()
    assert 'value="25.00"' in pane.list.object and "25 %" in pane.list.object and "ETA 9 s" in pane.list.object
    pane.cancel_select.value = jobs[1]["id"]
    pane.cancel_button.clicks += 1
    assert service.job(jobs[1]["id"])["state"] == "cancelled"
    assert list(pane.cancel_select.options.values()) == [jobs[0]["id"]]
    # A bad night is refused with its reason.
    pane.night.value = "yesterday"
    pane._start()
    assert "night" in pane.message.object and len(service.list_jobs()) == 2
