"""A simulated camera: writes a realistic synthetic frame every few seconds.

It feeds the demo (``QA_DEMO``) and the live-follow tests with frames that
look like a night at the telescope: seeing drifts, and now and then a frame
is trailed, out of focus, cloudy or holds a saturated star.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from components.core.focus import hyperbola
from components.core.synthetic import SyntheticFrame, star_field, write_fits

__all__ = ["SimulatedCamera", "Exposure", "TARGETS", "FILTERS"]

log = logging.getLogger("quickanalysis")

#: (OBJECT, RA, Dec) the camera points at in turn.
TARGETS = (
    ("M42", 83.822, -5.391),
    ("NGC 2024", 85.420, -1.900),
    ("M1", 83.633, 22.015),
    ("M13", 250.421, 36.461),
    ("NGC 7000", 314.750, 44.330),
)
#: Filters and their sky brightness in ADU per second.
FILTERS = (("V", 5.0), ("R", 8.0), ("B", 3.0), ("Ha", 0.8), ("L", 12.0))
EXPOSURES = (5.0, 10.0, 30.0, 60.0, 120.0)
# Frames taken on one target before slewing to the next.
_FRAMES_PER_TARGET = 12
_BIAS = 300.0
# Chance of each special condition (independently) per frame.
_EVENT_CHANCE = 1.0 / 8.0
# Focus runs: the first starts at this frame (so the demo soon shows a curve),
# then one every _FOCUS_RUN_EVERY frames, of _FOCUS_RUN_STEPS frames each.
_FOCUS_RUN_START = 2
_FOCUS_RUN_EVERY = 60
_FOCUS_RUN_STEPS = 9
# Focuser steps between the frames of a run, and FWHM pixels per step of defocus.
_FOCUS_STEP = 150
_DEFOCUS_PER_STEP = 0.01
# Best focus wanders with the (simulated) temperature around this position.
_FOCUS_HOME = 5000.0


@dataclass
class Exposure:
    """The conditions of one simulated frame (keyword arguments of ``star_field``)."""

    conditions: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    #: Focuser position written as FOCPOS.
    focus: int | None = None


class SimulatedCamera:
    """Write a synthetic frame into ``folder`` every ``interval`` seconds.

    Frames are tile-compressed FITS named ``sim-YYYYmmdd-HHMMSS-NNNN.fits.fz``
    (UTC time, sequence number), written atomically under a hidden temporary
    name. The camera never deletes nor rewrites a file.

    Parameters
    ----------
    folder : path-like
        Where frames go (created when missing).
    interval : float
        Seconds between frames of the background thread.
    max_frames : int
        The background thread stops after writing this many frames (in all,
        counting those of :meth:`capture`).
    shape : (int, int)
        Rows and columns of each frame.
    seed : int or None
        Seed of the random conditions and pixels, for reproducible runs.

    Examples
    --------
    >>> import tempfile
    >>> camera = SimulatedCamera(tempfile.mkdtemp(), shape=(64, 96), seed=3)
    >>> camera.capture().name.startswith("sim-")
    True
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        interval: float = 5.0,
        max_frames: int = 720,
        shape: tuple[int, int] = (1024, 1536),
        seed: int | None = None,
    ):
        self.folder = Path(folder)
        self.interval = float(interval)
        self.max_frames = int(max_frames)
        self.shape = (int(shape[0]), int(shape[1]))
        self._rng = np.random.default_rng(seed)
        self._fwhm = 3.0
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def frames_written(self) -> int:
        """Number of frames written so far."""
        return self._count

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "SimulatedCamera":
        """Start the background thread (the first frame is written at once)."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="simulated-camera", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the background thread and wait for a frame in progress."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set() and self._count < self.max_frames:
            try:
                self.capture()
            except Exception:
                # A full disk or a vanished folder must not kill the demo for good.
                log.exception("simulated camera could not write a frame")
            self._stop.wait(self.interval)

    def next_exposure(self) -> Exposure:
        """Draw the conditions of the next frame (advances the seeing random walk)."""
        rng = self._rng
        # Seeing drifts slowly: a reflected random walk between 2 and 5 px.
        fwhm = self._fwhm + rng.normal(0.0, 0.2)
        if fwhm < 2.0:
            fwhm = 4.0 - fwhm
        if fwhm > 5.0:
            fwhm = 10.0 - fwhm
        self._fwhm = fwhm = min(5.0, max(2.0, fwhm))

        name, ra, dec = TARGETS[(self._count // _FRAMES_PER_TARGET) % len(TARGETS)]
        filter_name, sky_rate = FILTERS[self._count % len(FILTERS)]
        exptime = float(rng.choice(EXPOSURES))
        area = self.shape[0] * self.shape[1] / (1024 * 1536)
        parameters = dict(
            shape=self.shape,
            fwhm=fwhm,
            psf="moffat" if rng.random() < 0.5 else "gaussian",
            beta=float(rng.uniform(2.5, 4.5)),
            n_stars=max(1, int(area * (80 + 4 * exptime) * rng.uniform(0.8, 1.2))),
            background=_BIAS + sky_rate * exptime,
            ra=ra + rng.normal(0.0, 0.002),
            dec=dec + rng.normal(0.0, 0.002),
            object=name,
            filter=filter_name,
            exptime=exptime,
            pixel_scale=0.5,
        )
        conditions = []
        if rng.random() < _EVENT_CHANCE:
            conditions.append("saturated")
            parameters["saturate_stars"] = int(rng.integers(1, 4))
        if rng.random() < _EVENT_CHANCE:
            conditions.append("defocused")
            parameters["fwhm"] = float(rng.uniform(8.0, 15.0))
            parameters["psf"] = "gaussian"
        if rng.random() < _EVENT_CHANCE:
            conditions.append("trailed")
            parameters["elongation"] = float(rng.uniform(2.0, 4.0))
            parameters["angle"] = float(rng.uniform(0.0, 180.0))
        if rng.random() < _EVENT_CHANCE:
            conditions.append("cloudy")
            parameters["cloud"] = float(rng.uniform(0.5, 0.9))
        best = self.best_focus
        run_step = self._focus_run_step()
        if run_step is not None:
            # A focus run: the focuser steps through best focus; nothing else happens.
            position = round(best) + (run_step - _FOCUS_RUN_STEPS // 2) * _FOCUS_STEP
            parameters.pop("saturate_stars", None), parameters.pop("elongation", None)
            parameters.pop("angle", None), parameters.pop("cloud", None)
            parameters["fwhm"] = float(hyperbola(position, fwhm, _DEFOCUS_PER_STEP, best))
            return Exposure(conditions=["focus"], parameters=parameters, focus=int(position))
        position = round(best)
        if "defocused" in conditions:
            # Out of focus by as many steps as the focus curve needs for that blur.
            steps = math.sqrt(max(parameters["fwhm"] ** 2 - fwhm**2, 0.0)) / _DEFOCUS_PER_STEP
            position += int(round(steps)) * (1 if self._count % 2 else -1)
        return Exposure(conditions=conditions or ["normal"], parameters=parameters, focus=int(position))

    @property
    def best_focus(self) -> float:
        """Today's best focuser position (it drifts slowly, like the temperature)."""
        return _FOCUS_HOME + 120.0 * math.sin(self._count / 90.0)

    def _focus_run_step(self) -> int | None:
        """Index of this frame within a focus run, or None outside one."""
        if self._count < _FOCUS_RUN_START:
            return None
        step = (self._count - _FOCUS_RUN_START) % _FOCUS_RUN_EVERY
        return step if step < _FOCUS_RUN_STEPS else None

    def _path_for(self, when: datetime) -> Path:
        sequence = self._count + 1
        while True:
            path = self.folder / f"sim-{when:%Y%m%d-%H%M%S}-{sequence:04d}.fits.fz"
            # Never overwrite: another camera (or a restart) may share the folder.
            if not path.exists():
                return path
            sequence += 1

    def expose(self, when: datetime | None = None) -> SyntheticFrame:
        """Make the next frame in memory, without writing it."""
        when = when or datetime.now(timezone.utc)
        exposure = self.next_exposure()
        frame = star_field(
            **exposure.parameters,
            date_obs=when,
            seed=self._rng,
        )
        header = frame.header
        header["SIMCOND"] = ("+".join(exposure.conditions), "Simulated conditions")
        header["FOCPOS"] = (exposure.focus, "[step] Focuser position")
        header["INSTRUME"] = ("SimCam", "Simulated camera")
        header["TELESCOP"] = ("QuickAnalysis simulator", "")
        header["AIRMASS"] = (round(1.0 + abs(math.sin(self._count / 50.0)), 3), "")
        return frame

    def capture(self) -> Path:
        """Write one frame now and return its path (the thread's limit does not apply)."""
        with self._lock:
            when = datetime.now(timezone.utc)
            frame = self.expose(when)
            frame.header["FRAMENUM"] = (self._count + 1, "Sequence number")
            self.folder.mkdir(parents=True, exist_ok=True)
            path = write_fits(frame, self._path_for(when), compress=True)
            self._count += 1
        return path
