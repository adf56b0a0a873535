"""The state of one observer's session: which frame, how it is shown, what is drawn.

A :class:`Session` holds only parameters; the views render them and write the
observer's choices back. The frames themselves come from the process-wide
:class:`~components.sources.FrameStore` (decoded once, shared by every
session), never from files read here.

Live following: :meth:`Session.tick` (a periodic callback of the page) lists
the session's folder and, while ``follow`` is on, switches to the newest frame.
Listing, decoding and the whole-frame analysis run in worker threads and come
back through :attr:`Session.scheduler` (the page's event loop), so a slow frame
shows a loading state instead of freezing the page, and a frame that cannot be
read leaves a message and the previous frame on screen while the session goes
on with the next one. Without a scheduler (tests, scripts) all of it runs at
once, in the caller's thread.

Quality (when the app wires a :class:`~app.quality_service.QualityService`):
:attr:`Session.quality` is the service's measurement of the frame shown, asked
for in a worker thread whenever the frame changes (the service measures each
frame version once, so this usually finds the background worker's result);
:meth:`Session.poll_history` re-reads the service's history of the folder
(worker thread) and replaces :attr:`Session.history` only when it gained or
changed rows; :meth:`Session.select_star` takes a click on the image, snaps it
to the nearest detected star, and :attr:`Session.star_result` becomes that
star's radial profile, measured in a worker thread.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from typing import Any

import numpy as np
import param

from components.core.quality import star_profile
from components.errors import ImageNotFound, QuickAnalysisError
from components.sources.base import directories_of
from components.views import compute, coords, display

__all__ = [
    "Session", "CLIP_CHOICES", "nearest_star", "profile_radius", "history_signature", "shared_measurement",
]

log = logging.getLogger("quickanalysis.views")

#: Histogram clip choices: label -> the API's ``clip_percent`` (fraction clipped at each end).
CLIP_CHOICES = {
    "none": 0.0,
    "0.01 % each end": 0.0001,
    "0.1 % each end": 0.001,
    "0.5 % each end": 0.005,
    "1 % each end": 0.01,
    "5 % each end": 0.05,
}
_pool = None
_pool_lock = threading.Lock()


def _executor():
    """Worker threads shared by every session (reads, decodes, whole-frame analysis)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qa-session")
        return _pool


# Listings younger than this are shared between sessions polling the same folder.
_LISTING_TTL = 0.15
_listing_lock = threading.Lock()
_listings: dict[tuple, tuple[float, list]] = {}


def _list_frames(store, directory: str) -> list:
    """``store.list_frames(directory)``, shared for a moment by every session of the process."""
    key = (id(store), directory)
    now = time.monotonic()
    with _listing_lock:
        hit = _listings.get(key)
        if hit is not None and now - hit[0] < _LISTING_TTL:
            return hit[1]
    try:
        frames = list(store.list_frames(directory))
    except ImageNotFound:
        frames = []
    with _listing_lock:
        _listings[key] = (time.monotonic(), frames)
    return frames


def _identity(info) -> tuple | None:
    return None if info is None else (info.key, info.version)


#: Radius (pixels) of a star's radial profile when the frame's FWHM is unknown.
DEFAULT_PROFILE_RADIUS = 15.0


def profile_radius(quality: dict | None) -> float:
    """Radius of the radial profile of a clicked star: 4 FWHM (8 to 30 px), as the core fits them."""
    fwhm = (quality or {}).get("fwhm_px")
    if fwhm is None or not math.isfinite(fwhm) or fwhm <= 0:
        return DEFAULT_PROFILE_RADIUS
    return float(min(max(4.0 * fwhm, 8.0), 30.0))


def nearest_star(quality: dict | None, column: float, row: float, within: float) -> tuple[float, float] | None:
    """Pixel position of the detected star nearest to ``(column, row)``, if closer than ``within``.

    Positions are frame pixels (column, row; pixel centres at integers), as
    :meth:`QualityService.measure` lists them in ``stars``.
    """
    stars = (quality or {}).get("stars") or {}
    xs, ys = np.asarray(stars.get("x", []), float), np.asarray(stars.get("y", []), float)
    if not len(xs) or len(xs) != len(ys):
        return None
    distance = np.hypot(xs - column, ys - row)
    index = int(np.argmin(distance))
    if not distance[index] <= within:
        return None
    return float(xs[index]), float(ys[index])


_measuring_lock = threading.Lock()
_measuring: dict[tuple, Any] = {}
_quality_pool = None


def _quality_executor():
    """Worker threads measuring quality: apart, so a slow frame never delays listings and reads."""
    global _quality_pool
    with _pool_lock:
        if _quality_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _quality_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="qa-quality")
        return _quality_pool


def shared_measurement(service, key: str, version, hdu):
    """A future of ``service.measure(key, hdu)``, shared by every session asking meanwhile.

    The service memoises finished results; this shares the one in progress (a
    new frame is asked for by every session following the folder at once),
    and nobody blocks a thread waiting for it.
    """
    ident = (id(service), key, version, hdu)
    with _measuring_lock:
        future = _measuring.get(ident)
        if future is None:
            future = _measuring[ident] = _quality_executor().submit(_measure, ident, service, key, hdu)
        return future


def _measure(ident, service, key, hdu):
    try:
        return service.measure(key, hdu)
    finally:
        with _measuring_lock:
            _measuring.pop(ident, None)


def history_signature(rows: list) -> tuple:
    """What tells two readings of the history apart: row count and newest recording."""
    if not rows:
        return (0, None)
    return (len(rows), max(row.get("recorded") or 0.0 for row in rows), rows[-1].get("key"))


class Session(param.Parameterized):
    """Everything one observer's dashboard shows, as parameters.

    Regions are kept in plot coordinates (see :mod:`components.views.coords`),
    so they survive a new frame and the orientation toggle unchanged.
    """

    # -- which frame
    directory = param.String(default="", doc="Folder the session lists ('' = the whole root).")
    directories = param.List(default=[], doc="Folders holding frames.")
    frames = param.List(default=[], doc="FrameInfo of the session's frames, newest first.")
    key = param.String(default=None, allow_None=True, doc="Key of the frame shown.")
    hdu = param.Integer(default=None, allow_None=True, doc="HDU chosen (None: the first image HDU).")
    follow = param.Boolean(default=True, doc="Switch to every new frame as it arrives.")

    # -- what is shown
    image = param.Parameter(default=None, doc="The decoded Image shown (from the store).")
    info = param.Parameter(default=None, doc="FrameInfo of the image shown.")
    loading = param.Boolean(default=False, doc="A frame is being read.")
    error = param.String(default="", doc="Why the last frame asked for could not be shown.")
    notice = param.String(default="", doc="The last frame that arrived while following.")

    # -- display
    interval = param.Selector(default="zscale", objects=list(display.INTERVALS.values()))
    manual_low = param.Number(default=None, allow_None=True, doc="Low limit of the manual interval.")
    manual_high = param.Number(default=None, allow_None=True, doc="High limit of the manual interval.")
    stretch = param.Selector(default="linear", objects=list(display.STRETCHES.values()))
    cmap = param.Selector(default="grey", objects=list(display.COLORMAPS))
    invert = param.Boolean(default=False, doc="Reverse the colour map.")
    fits_orientation = param.Boolean(
        default=False, doc="Show row 0 at the bottom (FITS/DS9) instead of the top."
    )

    # -- regions (plot coordinates)
    line = param.Tuple(default=None, length=4, allow_None=True, doc="Profile line (x0, y0, x1, y1).")
    box = param.Tuple(default=None, length=4, allow_None=True, doc="Statistics box (x0, y0, x1, y1).")

    # -- sky: pinned regions and compare (components.views.regions, components.views.compare)
    pinned = param.List(default=[], doc="Regions pinned to the sky: PinnedRegion.to_dict() dicts.")
    compare = param.Selector(default="off", objects=["off", "blink", "difference"], doc="Compare mode.")
    reference_key = param.String(
        default=None, allow_None=True, doc="Reference frame of compare and region changes (None: the previous).",
    )
    blink_interval = param.Number(default=1.0, bounds=(0.25, 30.0), doc="Seconds between blinks.")

    # -- histogram and profile
    clip_percent = param.Selector(default=0.001, objects=list(CLIP_CHOICES.values()))
    log_counts = param.Boolean(default=False, doc="Logarithmic histogram counts.")
    profile_unit = param.Selector(default="px", objects=["px", "arcsec"])

    # -- quality (see the module's docstring)
    quality = param.Dict(default=None, allow_None=True, doc="QualityService.measure() of the frame shown.")
    quality_pending = param.Boolean(default=False, doc="The frame shown is being measured.")
    quality_error = param.String(default="", doc="Why the frame shown could not be measured.")
    history = param.List(default=[], doc="Quality history rows of the session's folder, observing order.")
    show_stars = param.Boolean(default=True, doc="Mark the detected stars on the image.")
    star = param.Tuple(
        default=None, length=2, allow_None=True,
        doc="Frame pixel (column, row; pixel centres at integers) of the star last clicked.",
    )
    star_result = param.Parameter(default=None, doc="StarProfile of the star clicked, on the frame shown.")

    # -- collaborators
    store = param.Parameter(default=None, doc="FrameStore (default: app.state.get_store()).")
    quality_service = param.Parameter(
        default=None, doc="QualityService measuring frames (None: no quality, no timeline).",
    )
    pixel_scale_fallback = param.Number(default=None, allow_None=True, doc="Arcsec/px without WCS.")
    scheduler = param.Callable(
        default=None,
        doc="Runs a callable on the session's event loop (None: run it at once, in tests).",
    )

    def __init__(self, **params):
        super().__init__(**params)
        self._failed: set[tuple] = set()
        self._generation = 0
        self._wanted: tuple | None = None
        self._polling = False
        self._pinned = None
        self._lock = threading.Lock()
        self._quality_for = None  # (key, version, hdu) measured or being measured
        self._star_for = None  # (image, star, radius) profiled or being profiled
        self._history_polling = False
        self._history_directory = None

    # ------------------------------------------------------------ derived

    @property
    def shape(self) -> tuple[int, int] | None:
        return None if self.image is None else tuple(self.image.data.shape)

    @param.depends("image", "interval", "manual_low", "manual_high")
    def limits(self) -> tuple[float, float]:
        """Display limits of the image shown (raw pixel values)."""
        if self.image is None:
            return 0.0, 1.0
        return compute.display_limits(self.image, self.interval, (self.manual_low, self.manual_high))

    @param.depends("image", "interval", "manual_low", "manual_high", "stretch", "cmap", "invert")
    def palette(self) -> list[str]:
        """Colours Bokeh maps linearly onto :meth:`limits` (the stretch is baked in)."""
        table = None
        if self.stretch == "histeq" and self.image is not None:
            low, high = self.limits()
            table = compute.equalization_table(self.image, low, high)
        return display.make_palette(self.cmap, self.stretch, self.invert, table)

    @param.depends("image", "interval", "manual_low", "manual_high", "stretch", "cmap", "invert")
    def colour_mapping(self) -> dict:
        """``{"palette", "limits"}``: what the image view hands to Bokeh's colour mapper."""
        return {"palette": self.palette(), "limits": self.limits()}

    def pixel_scale(self) -> float | None:
        if self.image is None:
            return None
        return compute.pixel_scale(self.image, self.pixel_scale_fallback)

    def region_box(self):
        """The box clipped to the frame, or None (whole frame)."""
        if self.box is None or self.image is None:
            return None
        return coords.clip_box(self.box, self.image.data.shape)

    # ------------------------------------------------------------ frames

    def _store(self):
        if self.store is None:
            from app.state import get_store  # the app wires the process-wide store

            self.store = get_store()
        return self.store

    def refresh_frames(self, with_directories: bool = True) -> tuple:
        """List the session's folder (blocking: a worker thread's job when serving).

        Returns ``(frames, directories, pinned)``: ``pinned`` is the FrameInfo
        of the frame asked for by key when it is not in the listing (another
        folder), or the error met looking it up.
        """
        store = self._store()
        frames = _list_frames(store, self.directory)
        directories = None
        if with_directories:
            everything = frames if self.directory == "" else _list_frames(store, "")
            directories = directories_of(info.key for info in everything)
        pinned = None
        key = self.key
        if not self.follow and key is not None and all(info.key != key for info in frames):
            try:
                pinned = store.info(key)
            except QuickAnalysisError as error:
                pinned = error
        return frames, directories, pinned

    def apply_listing(self, frames: list, directories: list | None = None, pinned=None) -> None:
        """Take a listing made by :meth:`refresh_frames` (on the session's thread)."""
        updates: dict[str, Any] = {}
        if [_identity(f) for f in frames] != [_identity(f) for f in self.frames]:
            updates["frames"] = frames
        if directories is not None and directories != self.directories:
            updates["directories"] = directories
        self._pinned = pinned
        if isinstance(pinned, Exception) and self.image is None and not self.error:
            updates["error"] = f"Cannot show {self.key}: {pinned}"
        if updates:
            self.param.update(**updates)

    def target(self):
        """FrameInfo the session should show now (None: keep what is shown)."""
        if not self.frames:
            return None
        if self.follow:
            for info in self.frames:
                if _identity(info) not in self._failed:
                    return info
            return None
        wanted = self.key if self.key is not None else (self.info.key if self.info else None)
        if wanted is None:
            return self.frames[0]
        for info in self.frames:
            if info.key == wanted:
                return info
        pinned = self._pinned
        if pinned is not None and not isinstance(pinned, Exception) and pinned.key == wanted:
            return pinned  # a frame outside the folder, asked for by key
        return None  # gone: keep showing it

    def _needs(self, info) -> bool:
        """Whether showing ``info`` (with the chosen HDU) means reading something."""
        if info is None or _identity(info) in self._failed:
            return False
        with self._lock:
            if self._wanted == (_identity(info), self.hdu):
                return False  # already being read
        if self.image is None or _identity(self.info) != _identity(info):
            return True
        return self.hdu is not None and self.image.hdu != self.hdu

    def _read(self, info, hdu):
        """Decode a frame and analyse the whole of it (blocking, thread-safe)."""
        store = self._store()
        try:
            image = store.load(info.key, hdu)
        except QuickAnalysisError:
            if hdu is None:
                raise
            image = store.load(info.key, None)  # this frame lacks that HDU
        # Warm the shared memo: the panes then find the whole-frame numbers ready.
        compute.region_statistics(image)
        compute.region_histogram(image, None, self.clip_percent)
        compute.display_limits(image, self.interval, (self.manual_low, self.manual_high))
        box = self.box and coords.clip_box(self.box, image.data.shape)
        if box is not None:
            compute.region_statistics(image, box)
            compute.region_histogram(image, box, self.clip_percent)
        return image

    def _begin(self, info, hdu) -> int:
        with self._lock:
            self._generation += 1
            self._wanted = (_identity(info), hdu)
            return self._generation

    def _finish(self, generation, info, hdu, arrived, image, error) -> bool:
        with self._lock:
            if generation != self._generation:
                return False  # superseded by a later choice
            self._wanted = None
        if error is not None:
            self._failed.add(_identity(info))
            message = f"Cannot show {info.key}: {error}"
            log.warning("%s", message)
            self.param.update(loading=False, error=message)
            return False
        updates: dict[str, Any] = dict(image=image, info=info, key=info.key, loading=False, error="")
        if hdu is not None and image.hdu != hdu:
            updates["hdu"] = None
        if arrived:
            updates["notice"] = f"New frame: {info.name}"
        self.param.update(**updates)
        log.debug("shown %s", info.key)
        return True

    # ------------------------------------------------------------ scheduling

    def _submit(self, work, done) -> None:
        """Run ``work()`` in a worker thread, then ``done(result, error)`` on the session's thread.

        Without a :attr:`scheduler` (tests, scripts) both run here and now.
        """
        if self.scheduler is None:
            try:
                result, error = work(), None
            except Exception as exc:  # handed to done(), which reports it
                result, error = None, exc
            done(result, error)
            return

        self._when_done(_executor().submit(work), done)

    def _when_done(self, future, done) -> None:
        """Run ``done(result, error)`` on the session's thread once ``future`` is done."""

        def finished(future):
            scheduler = self.scheduler
            if scheduler is None:
                return  # the page closed meanwhile
            error = future.exception()
            result = None if error is not None else future.result()
            scheduler(functools.partial(done, result, error))

        future.add_done_callback(finished)

    def tick(self, with_directories: bool = True) -> None:
        """One live step: list the folder (worker thread), then switch frame if needed."""
        if self._polling:
            return  # the previous listing is still running
        self._polling = True
        directory = self.directory
        self._submit(
            functools.partial(self.refresh_frames, with_directories),
            functools.partial(self._listed, directory),
        )

    def _listed(self, directory, listing, error) -> None:
        self._polling = False
        if error is not None:  # storage hiccup: try again on the next tick
            log.warning("listing %r failed: %s", directory, error)
            return
        if directory != self.directory:
            self.tick()  # the observer changed folder meanwhile: list the new one
            return
        self.apply_listing(*listing)
        self.advance()

    def advance(self) -> None:
        """Start reading the frame the session should show, if it is not shown yet."""
        info = self.target()
        if not self._needs(info):
            return
        arrived = bool(self.follow and self.info is not None and info.key != self.info.key)
        hdu = self.hdu
        log.debug("reading %s", info.key)
        generation = self._begin(info, hdu)
        self.loading = True
        self._submit(
            functools.partial(self._read, info, hdu),
            functools.partial(self._loaded, generation, info, hdu, arrived),
        )

    def _loaded(self, generation, info, hdu, arrived, image, error) -> None:
        log.debug("read %s", info.key)
        if error is not None and not isinstance(error, QuickAnalysisError):
            log.error("reading %s failed", info.key, exc_info=error)
        shown = self._finish(generation, info, hdu, arrived, image, error)
        if not shown and error is not None:
            self.advance()  # go on with the next frame (failed ones are skipped)

    # ------------------------------------------------------------ observer's choices

    def pick(self, key: str) -> None:
        """The observer chose a frame: stop following unless it is the newest one."""
        if self.frames and key != self.frames[0].key:
            self.follow = False
        for info in self.frames:
            if info.key == key:
                self._failed.discard(_identity(info))  # let them retry a failed read
        self.param.update(key=key, error="")

    @param.depends("follow", "key", "hdu", watch=True)
    def _choice_changed(self) -> None:
        self.advance()

    @param.depends("directory", watch=True)
    def _directory_changed(self) -> None:
        self.tick()
        self.poll_history()

    # ------------------------------------------------------------ quality

    def _quality_target(self):
        """(key, version, hdu) of the frame shown, as the quality service memoises it."""
        if self.image is None or self.info is None:
            return None
        return (self.info.key, self.info.version, None if self.hdu is None else self.image.hdu)

    @param.depends("image", watch=True)
    def _image_changed(self) -> None:
        self.measure_quality()
        self.profile_star()

    def measure_quality(self) -> None:
        """Ask the quality service for the frame shown (worker thread; no-op when known)."""
        target = self._quality_target()
        service = self.quality_service
        if service is None or target is None:
            if self.quality is not None or self.quality_pending:
                self.param.update(quality=None, quality_pending=False, quality_error="")
            self._quality_for = None
            return
        if target == self._quality_for:
            return
        self._quality_for = target
        key, version, hdu = target
        self.param.update(quality=None, quality_pending=True, quality_error="")
        done = functools.partial(self._measured, target)
        if self.scheduler is None:
            self._submit(functools.partial(service.measure, key, hdu), done)
        else:
            self._when_done(shared_measurement(service, key, version, hdu), done)

    def _measured(self, target, result, error) -> None:
        if target != self._quality_for:
            return  # another frame is shown by now
        if error is not None:
            if not isinstance(error, QuickAnalysisError):
                log.error("measuring %s failed", target[0], exc_info=error)
            self.param.update(quality=None, quality_pending=False, quality_error=str(error))
            return
        self.param.update(quality=result, quality_pending=False, quality_error="")

    def poll_history(self) -> None:
        """Re-read the quality history of the folder (worker thread); replace it only if it changed."""
        service = self.quality_service
        if service is None or self._history_polling:
            return
        self._history_polling = True
        directory = self.directory
        self._submit(
            functools.partial(service.history.rows, directory or None),
            functools.partial(self._history_read, directory),
        )

    def _history_read(self, directory, rows, error) -> None:
        self._history_polling = False
        if error is not None:
            log.warning("reading the quality history failed: %s", error)
            return
        if directory != self.directory:
            return  # the next poll reads the new folder
        if directory != self._history_directory or history_signature(rows) != history_signature(self.history):
            self._history_directory = directory
            self.history = rows

    def select_star(self, column: float, row: float) -> None:
        """The observer clicked at frame pixel ``(column, row)``: profile the star there.

        The click snaps to the nearest detected star within 2 FWHM (at least 6
        px); elsewhere the profile is centred on the brightest light near the
        click (:func:`~components.core.quality.star_profile` re-centres).
        """
        if self.image is None:
            return
        height, width = self.image.data.shape
        column = min(max(float(column), 0.0), width - 1.0)
        row = min(max(float(row), 0.0), height - 1.0)
        fwhm = (self.quality or {}).get("fwhm_px") or 0.0
        snapped = nearest_star(self.quality, column, row, max(6.0, 2.0 * fwhm))
        self.star = snapped if snapped is not None else (column, row)

    @param.depends("star", "quality", "quality_pending", watch=True)
    def _star_changed(self) -> None:
        self.profile_star()

    def profile_star(self) -> None:
        """Measure the radial profile of :attr:`star` on the frame shown (worker thread)."""
        image, star = self.image, self.star
        if image is None or star is None:
            self._star_for = None
            if self.star_result is not None:
                self.star_result = None
            return
        if self.quality_pending:
            return  # the radius depends on the frame's FWHM: profile when it is known
        radius = profile_radius(self.quality)
        target = (id(image), tuple(star), radius)
        if target == self._star_for:
            return
        self._star_for = target
        self._submit(
            functools.partial(star_profile, image.data, star[0], star[1], radius),
            functools.partial(self._star_measured, target),
        )

    def _star_measured(self, target, result, error) -> None:
        if target != self._star_for:
            return
        if error is not None:
            log.warning("star profile at %s failed: %s", target[1], error)
            result = None
        self.star_result = result
