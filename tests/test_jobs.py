"""Jobs over real HTTP, run on a real Dask scheduler with two worker subprocesses on 127.0.0.1."""

from __future__ import annotations

import csv
import io

import pytest
import requests

from conftest import free_port
from jobs_support import NIGHT, dask_cluster, poll_job, wait_for_job, write_frames  # noqa: F401

FRAMES = 16


def _server(start_server, root, address):
    # QA_QUALITY=0: only the job measures frames, so the history proves what the job did.
    return start_server(root, env={"QA_DASK_SCHEDULER": address, "QA_QUALITY": "0"})


def _post(url: str, body: dict, status: int = 200) -> dict:
    response = requests.post(f"{url}/jobs", json=body, timeout=30)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def test_quality_job_runs_on_the_workers_with_real_progress(start_server, dask_cluster, tmp_path):
    names = write_frames(tmp_path / "data", FRAMES)
    server = _server(start_server, tmp_path, dask_cluster.address)
    job = _post(server.url, {"kind": "quality", "s3_directory": "data"})["job"]
    assert job["kind"] == "quality" and job["state"] in ("pending", "running")
    final, polls = wait_for_job(server.url, job["id"])
    assert final["state"] == "complete", final
    assert final["done"] == final["total"] == FRAMES and final["percent"] == 100
    # Its tasks ran on the scheduler's two workers, and on nothing else.
    assert sorted(final["workers"]) == dask_cluster.workers
    percents = [poll["percent"] for poll in polls if poll["percent"] is not None]
    assert percents == sorted(percents) and percents[-1] == 100
    running = [poll for poll in polls if poll["state"] == "running" and 0 < poll["done"] < poll["total"]]
    assert running, "no poll saw the job part-way"
    assert all(isinstance(poll["eta_seconds"], (int, float)) and poll["eta_seconds"] >= 0 for poll in running)
    assert len({poll["percent"] for poll in running}) >= 1
    # Every frame is in the quality history, measured.
    frames = requests.get(f"{server.url}/session/quality?s3_directory=data", timeout=30).json()["frames"]
    assert sorted(frame["key"] for frame in frames) == [f"data/{name}" for name in names]
    assert all(frame["error"] is None and frame["star_count"] > 0 for frame in frames)
    listed = requests.get(f"{server.url}/jobs", timeout=30).json()["jobs"]
    assert [item["id"] for item in listed] == [job["id"]]


def test_export_csv_equals_statistics_of_each_frame(start_server, dask_cluster, tmp_path):
    names = write_frames(tmp_path / "data", 8, stars=4)
    # Two frames of another night: the night's export leaves them out.
    write_frames(tmp_path / "data" / "later", 2, stars=4, first=1795000000.0)
    server = _server(start_server, tmp_path, dask_cluster.address)
    box = {"x0": 0.1, "y0": 0.2, "x1": 0.6, "y1": 0.9}
    job = _post(server.url, {"kind": "export", "s3_directory": "data", "night": NIGHT, "subregion": box})["job"]
    final, _ = wait_for_job(server.url, job["id"])
    assert final["state"] == "complete" and final["total"] == len(names), final
    assert final["result_url"] == f"/jobs/{job['id']}/result"
    response = requests.get(server.url + final["result_url"], timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["key"] for row in rows] == [f"data/{name}" for name in names]
    for row, name in zip(rows, names):
        answer = requests.post(f"{server.url}/statistics", timeout=30, json={
            "s3_directory": "data", "full_filename": name, "subregion": box}).json()
        for field, value in answer["stats"].items():
            if field in ("mean", "std"):
                # Sums: numba's parallel reduction adds in an order set by the process's thread
                # count (one on a worker), so the last bit may differ; order statistics are exact.
                assert float(row[field]) == pytest.approx(value, rel=1e-12, abs=0), (name, field)
            else:
                assert float(row[field]) == value, (name, field)
        assert row["error"] == ""


def test_movie_is_an_mp4_with_one_frame_per_image(start_server, dask_cluster, tmp_path):
    import imageio_ffmpeg
    import numpy as np

    names = write_frames(tmp_path / "data", 7, shape=(200, 300), stars=4)
    server = _server(start_server, tmp_path, dask_cluster.address)
    job = _post(server.url, {"kind": "movie", "s3_directory": "data", "interval": "99.5",
                             "stretch": "asinh", "cmap": "viridis"})["job"]
    final, _ = wait_for_job(server.url, job["id"])
    assert final["state"] == "complete", final
    response = requests.get(server.url + final["result_url"], timeout=60)
    assert response.status_code == 200 and response.headers["Content-Type"] == "video/mp4"
    movie = tmp_path / "movie.mp4"
    movie.write_bytes(response.content)
    frame_count, _seconds = imageio_ffmpeg.count_frames_and_secs(str(movie))
    assert frame_count == len(names)
    reader = imageio_ffmpeg.read_frames(str(movie))
    meta = reader.__next__()
    width, height = meta["size"]
    assert (width, height) == (304, 208)  # 300 x 200 rounded up to whole 16-pixel blocks
    first = np.frombuffer(next(reader), dtype=np.uint8).reshape(height, width, 3)
    reader.close()
    # viridis: the sky is coloured (not grey), and the stamp's white text is there.
    assert np.abs(first[100, 150].astype(int) - first[100, 150].mean()).max() > 10
    assert (first[:20, :].min(axis=2) > 200).any()


def test_cancel_stops_the_job_and_says_so(start_server, dask_cluster, tmp_path):
    write_frames(tmp_path / "data", 40, stars=15)
    server = _server(start_server, tmp_path, dask_cluster.address)
    job = _post(server.url, {"kind": "quality", "s3_directory": "data"})["job"]
    wait_for_job(server.url, job["id"], states=("running",))
    response = requests.delete(f"{server.url}/jobs/{job['id']}", timeout=30)
    assert response.status_code == 200, response.text
    cancelled = response.json()["job"]
    assert cancelled["state"] == "cancelled" and cancelled["done"] < cancelled["total"]
    again = poll_job(server.url, job["id"])
    assert again["state"] == "cancelled" and again["done"] == cancelled["done"]
    assert again["result_url"] is None
    # A second job still runs after the cancelled one: the workers were not left busy.
    other = _post(server.url, {"kind": "export", "s3_directory": "data", "night": NIGHT})["job"]
    assert wait_for_job(server.url, other["id"])[0]["state"] == "complete"


def test_pending_job_runs_after_the_server_restarts(start_server, dask_cluster, tmp_path):
    names = write_frames(tmp_path / "data", 5, stars=4)
    # Nothing listens there: the job cannot start and stays pending.
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    first = _server(start_server, tmp_path, nowhere)
    job = _post(first.url, {"kind": "quality", "s3_directory": "data"})["job"]
    assert poll_job(first.url, job["id"])["state"] == "pending"
    first.stop()
    second = _server(start_server, tmp_path, dask_cluster.address)
    final, _ = wait_for_job(second.url, job["id"])
    assert final["state"] == "complete" and final["done"] == len(names)
    frames = requests.get(f"{second.url}/session/quality", timeout=30).json()["frames"]
    assert sorted(frame["key"] for frame in frames) == [f"data/{name}" for name in names]


BAD_BODIES = [
    ({"kind": "nap", "s3_directory": "data"}, "kind"),
    ({"s3_directory": "data"}, "kind"),
    ({"kind": "quality"}, "s3_directory"),
    ({"kind": "quality", "s3_directory": "secret"}, "s3_directory must be one of"),
    ({"kind": "quality", "s3_directory": "data", "night": "2026-13-40"}, "night"),
    ({"kind": "quality", "s3_directory": "data", "night": "tonight"}, "night"),
    ({"kind": "export", "s3_directory": "data", "subregion": {"x0": 0.2, "y0": 0.2, "x1": 0.2, "y1": 0.5}}, "subregion"),
    ({"kind": "export", "s3_directory": "data", "subregion": {"x0": 0.2, "y0": 0.2, "x1": 1.5, "y1": 0.5}}, "x1"),
    ({"kind": "movie", "s3_directory": "data", "cmap": "rainbow-unicorn"}, "colour map"),
    ({"kind": "movie", "s3_directory": "data", "stretch": "cubic"}, "stretch"),
    ({"kind": "movie", "s3_directory": "data", "max_side": 10**9}, "max_side"),
    ({"kind": "report", "dataset": "data"}, "night"),
]


def test_bad_parameters_are_400_json(start_server, tmp_path):
    (tmp_path / "data").mkdir()
    # Validation needs no cluster: nothing listens at this scheduler address.
    server = start_server(tmp_path, env={"QA_DASK_SCHEDULER": f"tcp://127.0.0.1:{free_port()}"})
    bodies = list(BAD_BODIES)
    try:
        import components.reports  # noqa: F401
    except ImportError:  # the reports feature is absent from this build: say so, as 400
        bodies.append(({"kind": "report", "dataset": "data", "night": NIGHT}, "reports are not available"))
    for body, words in bodies:
        answer = _post(server.url, body, status=400)
        assert answer["success"] is False and words in answer["message"], (body, answer)
    for raw in (b"", b"[1, 2]", b"{nope"):
        response = requests.post(f"{server.url}/jobs", data=raw, timeout=30)
        assert response.status_code == 400 and response.json()["success"] is False
    assert requests.get(f"{server.url}/jobs", timeout=30).json()["jobs"] == []
    # An unknown job is 404; a job without result yet is 409.
    missing = requests.get(f"{server.url}/jobs/0123456789ab", timeout=30)
    assert missing.status_code == 404 and "no job" in missing.json()["message"]
    assert requests.delete(f"{server.url}/jobs/0123456789ab", timeout=30).status_code == 404
    job = _post(server.url, {"kind": "quality", "s3_directory": "data"})["job"]
    early = requests.get(f"{server.url}/jobs/{job['id']}/result", timeout=30)
    assert early.status_code == 409 and "has no result" in early.json()["message"]
    # Cancelling a pending job (it never got a worker) is immediate.
    cancelled = requests.delete(f"{server.url}/jobs/{job['id']}", timeout=30).json()["job"]
    assert cancelled["state"] == "cancelled" and cancelled["done"] == 0


def test_report_job_builds_the_night_report_into_the_repository(start_server, dask_cluster, tmp_path):
    import datetime as dt

    names = write_frames(tmp_path / "data", 6)
    config = tmp_path / "reports.toml"
    config.write_text('[[dataset]]\nname = "sim"\ndirectory = "data"\nplots = ["fwhm_px", "star_count"]\n')
    server = start_server(tmp_path, env={
        "QA_DASK_SCHEDULER": dask_cluster.address, "QA_QUALITY": "0", "QA_REPORTS_CONFIG": str(config),
    })
    measured, _ = wait_for_job(server.url, _post(server.url, {"kind": "quality", "s3_directory": "data"})["job"]["id"])
    assert measured["state"] == "complete", measured
    rows = requests.get(f"{server.url}/session/quality?s3_directory=data", timeout=30).json()["frames"]
    nights = {(dt.datetime.fromisoformat(row["observed"]).astimezone(dt.timezone.utc) - dt.timedelta(hours=12)).date().isoformat()
              for row in rows}
    assert len(nights) == 1, nights
    night = nights.pop()

    job = _post(server.url, {"kind": "report", "dataset": "sim", "night": night})["job"]
    final, _ = wait_for_job(server.url, job["id"])
    assert final["state"] == "complete" and final["percent"] == 100, final
    page = requests.get(server.url + final["result_url"], timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert all(f"data/{name}" in page.text for name in names)
    # The report is the repository's, as a scheduled one would be.
    listed = requests.get(f"{server.url}/reports?format=json", timeout=30).json()["reports"]
    assert [(item["dataset"], item["night"]) for item in listed] == [("sim", night)]
    summary = requests.get(f"{server.url}/reports/sim/{night}/report.json", timeout=30).json()
    assert summary["frames"] == len(names)


def test_report_job_of_an_unknown_dataset_fails_saying_so(start_server, dask_cluster, tmp_path):
    write_frames(tmp_path / "data", 1)
    config = tmp_path / "reports.toml"
    config.write_text('[[dataset]]\nname = "sim"\ndirectory = "data"\n')
    server = start_server(tmp_path, env={
        "QA_DASK_SCHEDULER": dask_cluster.address, "QA_QUALITY": "0", "QA_REPORTS_CONFIG": str(config),
    })
    job = _post(server.url, {"kind": "report", "dataset": "other", "night": NIGHT})["job"]
    final, _ = wait_for_job(server.url, job["id"])
    assert final["state"] == "failed" and "other" in final["error"], final
