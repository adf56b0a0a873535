"""The simulated camera's focuser and focus runs, and the focus position in the quality history."""

from __future__ import annotations

import sqlite3

import pytest
from astropy.io import fits

from components.core.focus import fit_focus
from components.sources.camera import SimulatedCamera
from components.sources.history import QualityHistory


def test_camera_focus_run_follows_a_hyperbola_of_the_focuser_position(tmp_path):
    camera = SimulatedCamera(tmp_path, shape=(32, 48), seed=7)
    runs, others = [], []
    for _ in range(75):
        best = camera.best_focus
        exposure = camera.next_exposure()
        camera._count += 1
        (runs if exposure.conditions == ["focus"] else others).append((exposure, best))
    assert len(runs) == 18  # two runs of nine frames
    first = runs[:9]
    positions = [e.focus for e, _ in first]
    assert positions == sorted(positions) and len(set(positions)) == 9
    fit = fit_focus(positions, [e.parameters["fwhm"] for e, _ in first])
    # Noise-free FWHM: the fit finds the camera's best focus of that moment.
    assert fit.best_focus == pytest.approx(first[4][1], abs=5)
    assert 2.0 <= fit.fwhm_min_px <= 5.0
    # Outside runs the focuser sits at best focus, except for defocused frames.
    for exposure, best in others:
        if "defocused" in exposure.conditions:
            assert abs(exposure.focus - best) > 500
        else:
            assert exposure.focus == round(best)


def test_captured_frames_carry_focpos(tmp_path):
    camera = SimulatedCamera(tmp_path, shape=(32, 48), seed=8)
    path = camera.capture()
    with fits.open(path) as hdus:
        assert isinstance(hdus[1].header["FOCPOS"], int)


def test_history_records_focus_and_upgrades_an_old_database(tmp_path):
    path = tmp_path / "old.sqlite3"
    # The table as it was before the focus column.
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE frame_quality (key TEXT NOT NULL, version TEXT NOT NULL, directory TEXT NOT NULL,"
            " name TEXT NOT NULL, observed REAL NOT NULL, recorded REAL NOT NULL, background REAL,"
            " background_rms REAL, saturated_fraction REAL, star_count REAL, fwhm_px REAL, fwhm_arcsec REAL,"
            " hfr_px REAL, elongation REAL, pixel_scale REAL, verdicts TEXT, error TEXT, PRIMARY KEY (key, version))"
        )
        connection.execute(
            "INSERT INTO frame_quality (key, version, directory, name, observed, recorded, fwhm_px)"
            " VALUES ('data/old.fits', 'v', 'data', 'old.fits', 1, 1, 3.0)"
        )
    history = QualityHistory(path)
    history.record("data/new.fits", "v", 2, {"fwhm_px": 4.0, "focus": 5100})
    rows = history.rows("data")
    assert [(r["key"], r["focus"]) for r in rows] == [("data/old.fits", None), ("data/new.fits", 5100.0)]
    history.close()


def test_quality_service_records_the_focus_keyword(tmp_path):
    from app.quality_service import QualityService
    from app.settings import Settings, get_settings, set_settings
    from components.core.synthetic import star_field, write_fits
    from components.sources import FrameStore, ImageCache, LocalSource

    (tmp_path / "data").mkdir()
    for name, value in (("a.fits", 4800), ("b.fits", None)):
        frame = star_field(shape=(200, 200), n_stars=20, seed=1)
        if value is not None:
            frame.header["FOCUSPOS"] = value
            frame.header["FOCPOS"] = 1  # not the configured keyword
        write_fits(frame, tmp_path / "data" / name)
    previous = get_settings()
    set_settings(Settings(root=tmp_path, focus_keyword="FOCUSPOS"))
    try:
        store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**8))
        service = QualityService(store, QualityHistory(tmp_path / "q.sqlite3"))
        for key in ("data/a.fits", "data/b.fits"):
            service.record(key)
    finally:
        set_settings(previous)
    rows = {row["key"]: row for row in service.history.rows()}
    assert {key: row["focus"] for key, row in rows.items()} == {"data/a.fits": 4800.0, "data/b.fits": None}
    # The centre's sky position, for the pointing drift (star_field centres on 83.8, -5.4).
    assert rows["data/a.fits"]["center_ra"] == pytest.approx(83.8, abs=1e-3)
    assert rows["data/a.fits"]["center_dec"] == pytest.approx(-5.4, abs=1e-3)
