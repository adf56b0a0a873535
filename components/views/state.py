"""The state of one observer's session: which frame, how it is shown, what is drawn.

A :class:`Session` holds the observer's choices (folder, frame, follow, HDU,
display choices, line, box, star) as parameters, plus what the session shows
because of them (the decoded image, its quality, the folder's history), which
only the session itself sets. The views render those parameters with
``pn.bind`` / ``param.depends`` and write the observer's choices back.

Nothing here lists storage or holds threads. The frames come from the
process-wide frame feed (:class:`components.sources.feed.FrameFeed`, its
in-memory index) and the store (decoded once, shared by every session); the
app wires both in. :meth:`Session.connect` subscribes the session to the
process's event bus: a ``frame`` event makes it look at the index again
(and, while following, switch to the newest frame), a ``quality`` event
brings the measurement of the frame shown and the folder's new history row,
and ``storage`` events say when storage is unreachable and back.

Reading a frame and profiling a star run in the process-wide executor
(:func:`components.sources.cache.executor`) and come back through
:attr:`Session.scheduler` (the page's event loop), so a slow frame shows a
loading state instead of freezing the page. Without a scheduler (tests,
scripts) everything runs at once, in the caller's thread.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from typing import Any

import numpy as np
import param

from components.core.quality import star_profile
from components.errors import ImageNotFound, QuickAnalysisError
from components.foreground import foreground
from components.sources.cache import executor
from components.sources.feed import ListingIndex
from components.views import compute, coords, display

__all__ = ["Session", "CLIP_CHOICES", "nearest_star", "profile_radius", "merge_history"]

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


def _identity(info) -> tuple | None:
    return None if info is None else (info.key, info.version)


def _under(key: str, directory: str) -> bool:
    return not directory or (key or "").startswith(directory + "/")


def merge_history(rows: list, row: dict) -> list:
    """``rows`` (observing order) with ``row`` added, or replacing the row of its key."""
    merged = [old for old in rows if old.get("key") != row.get("key")]
    merged.append(row)
    merged.sort(key=lambda r: (r.get("observed") or 0.0, r.get("key") or ""))
    return merged


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


class _Read:
    """A frame read in flight, as held by the foreground gate (components.foreground)."""


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
    store = param.Parameter(default=None, doc="FrameStore the frames are decoded through (the app's).")
    feed = param.Parameter(
        default=None, doc="Index of frames (the process's FrameFeed; None: list the store when asked).",
    )
    quality_service = param.Parameter(
        default=None, doc="QualityService measuring frames (None: no quality, no timeline).",
    )
    pixel_scale_fallback = param.Number(default=None, allow_None=True, doc="Arcsec/px without WCS.")
    scheduler = param.Callable(
        default=None,
        doc="Runs a callable on the session's event loop (None: run it at once, in tests).",
    )
    storage = param.String(default="", doc="Why storage cannot be reached now ('' when it can).")

    def __init__(self, **params):
        super().__init__(**params)
        self._failed: set[tuple] = set()
        self._generation = 0
        self._reads: dict[int, _Read] = {}  # reads in flight, each holding the foreground gate
        self._wanted: tuple | None = None
        self._pinned = None
        self._lock = threading.Lock()
        self._quality_for = None  # (key, version, hdu) measured or being measured
        self._star_for = None  # (image, star, radius) profiled or being profiled
        self._history_for = None  # folder whose history is shown
        self._history_reading = None  # folder whose history is being read
        self._history_early: list = []  # quality rows that arrived during that read
        self._refresh_due = False
        self._unsubscribe: list = []

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

    # ------------------------------------------------------------ the feed

    def _index(self):
        if self.feed is None:
            if self.store is None:
                raise RuntimeError("a Session needs a store (the app passes the process's)")
            self.feed = ListingIndex(self.store)
        return self.feed

    def connect(self, events) -> None:
        """Follow the process's event bus (``frame``, ``quality``, ``storage``) until :meth:`disconnect`.

        Callbacks arrive in the publisher's thread; the session's work is
        handed to :attr:`scheduler` (one refresh for a burst of frames).
        """
        self.disconnect()
        self._unsubscribe = [
            events.subscribe(self._on_frame_event, "frame"),
            events.subscribe(self._on_quality_event, "quality"),
            events.subscribe(self._on_storage_event, "storage"),
        ]

    def disconnect(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def _release_read(self, generation=None) -> None:
        """Foreground work of that read (of every read: None) is over (components.foreground)."""
        for key in ([generation] if generation is not None else list(self._reads)):
            token = self._reads.pop(key, None)
            if token is not None:
                foreground.done(token)

    def release_foreground(self) -> None:
        """Nobody waits for what this session reads now (its page left, or it dozes)."""
        self._release_read(None)

    def _schedule(self, callback) -> None:
        scheduler = self.scheduler
        if scheduler is None:
            callback()
        else:
            scheduler(callback)

    def _on_frame_event(self, event) -> None:
        data = event.data
        key = data.get("key") or ""
        shown = self.info.key if self.info is not None else None
        if not _under(key, self.directory) and key != shown and key != self.key:
            return  # another folder: nothing this session shows or lists
        with self._lock:
            # A frame announced again (rewritten, or complete at last) deserves another read.
            self._failed = {ident for ident in self._failed if ident[0] != key}
            if self._refresh_due:
                return
            self._refresh_due = True
        self._schedule(self._refresh_from_event)

    def _refresh_from_event(self) -> None:
        with self._lock:
            self._refresh_due = False
        self.refresh()

    def _on_quality_event(self, event) -> None:
        row = event.data
        self._schedule(functools.partial(self.take_quality, row))

    def _on_storage_event(self, event) -> None:
        data = event.data
        self._schedule(functools.partial(self.take_storage, data.get("state"), data.get("message") or ""))

    def take_storage(self, state: str, message: str = "") -> None:
        """Storage became unreachable, or reachable again (then look at the index again)."""
        if state == "unreachable":
            self.storage = message or "Storage is unreachable."
        else:
            self.storage = ""
            self.refresh()

    # ------------------------------------------------------------ frames

    def refresh_frames(self, with_directories: bool = True) -> tuple:
        """``(frames, directories, pinned)`` of the session's folder, from the index.

        ``pinned`` is the FrameInfo of the frame asked for by key when it is
        not in the folder (another folder), or the error met looking it up.
        """
        index = self._index()
        frames = index.frames(self.directory)
        directories = index.directories() if with_directories else None
        pinned = None
        key = self.key
        if not self.follow and key is not None and all(info.key != key for info in frames):
            pinned = index.get(key)
            if pinned is None:
                try:
                    pinned = index.info(key)
                except QuickAnalysisError as error:
                    pinned = error
        return frames, directories, pinned

    def apply_listing(self, frames: list, directories: list | None = None, pinned=None) -> None:
        """Take what :meth:`refresh_frames` found (on the session's thread)."""
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

    def refresh(self, with_directories: bool = True) -> None:
        """Look at the index (in memory: no storage listing), then switch frame if needed."""
        try:
            listing = self.refresh_frames(with_directories)
        except ImageNotFound:
            listing = ([], None, None)
        except QuickAnalysisError as error:  # e.g. a folder that cannot exist
            self.error = str(error)
            return
        except Exception as error:  # storage hiccup (an index over a store): try on the next event
            log.warning("listing %r failed: %s", self.directory, error)
            return
        self.apply_listing(*listing)
        self.advance()

    #: The name the page and the tests have always used for one live step.
    tick = refresh

    def target(self):
        """FrameInfo the session should show now (None: keep what is shown)."""
        if not self.frames:
            pinned = self._pinned
            if not self.follow and pinned is not None and not isinstance(pinned, Exception):
                return pinned
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
        """Decode a frame and analyse the whole of it (blocking, thread-safe, memoised)."""
        store = self.store
        try:
            image = store.load(info.key, hdu, info=info)
        except QuickAnalysisError:
            if hdu is None:
                raise
            image = store.load(info.key, None, info=info)  # this frame lacks that HDU
        # The shared memo: usually ready (the quality service prepared the frame).
        compute.region_statistics(image)
        compute.region_histogram(image, None, self.clip_percent)
        compute.display_limits(image, self.interval, (self.manual_low, self.manual_high))
        box = self.box and coords.clip_box(self.box, image.data.shape)
        if box is not None:
            compute.region_statistics(image, box)
            compute.region_histogram(image, box, self.clip_percent)
        return image

    def _ready(self, info, hdu):
        """The image of ``info`` if decoded and analysed already (the warm case), else None."""
        try:
            image = self.store.peek(info.key, hdu, info=info)
        except QuickAnalysisError:
            return None
        if image is None or not compute.analysed(image, self.clip_percent, self.interval):
            return None
        if self.box is not None or self.interval == "manual":
            return None  # numbers of the observer's own: computed in a worker
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
        """Run ``work()`` in the process's executor, then ``done(result, error)`` on the session's thread.

        Without a :attr:`scheduler` (tests, scripts) both run here and now.
        """
        if self.scheduler is None:
            try:
                result, error = work(), None
            except Exception as exc:  # handed to done(), which reports it
                result, error = None, exc
            done(result, error)
            return
        self._when_done(executor().submit(work), done)

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

    def advance(self) -> None:
        """Start reading the frame the session should show, if it is not shown yet."""
        info = self.target()
        if not self._needs(info):
            return
        arrived = bool(self.follow and self.info is not None and info.key != self.info.key)
        hdu = self.hdu
        log.debug("reading %s", info.key)
        generation = self._begin(info, hdu)
        if self.scheduler is not None:
            image = self._ready(info, hdu)
            if image is not None:  # decoded and analysed already: show it now, in this batch
                self._loaded(generation, info, hdu, arrived, image, None)
                return
        self.loading = True
        token = self._reads[generation] = _Read()
        foreground.busy(token)  # until the batch showing it is over (see _loaded)
        try:
            self._submit(
                functools.partial(self._read, info, hdu),
                functools.partial(self._loaded, generation, info, hdu, arrived),
            )
        except BaseException:
            self._release_read(generation)
            raise

    def _loaded(self, generation, info, hdu, arrived, image, error) -> None:
        log.debug("read %s", info.key)
        if error is not None and not isinstance(error, QuickAnalysisError):
            log.error("reading %s failed", info.key, exc_info=error)
        # Shown in this batch: background work may go on once it is sent (the next tick).
        self._schedule(functools.partial(self._release_read, generation))
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
        self.refresh()
        self.load_history()

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
        """The quality service's measurement of the frame shown (never blocks the page).

        Found in the service's memo when measured already; otherwise the
        session joins the measurement in progress, or starts it in the
        process's executor (one measurement per frame version whoever asks).
        """
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
        if self.scheduler is None:  # tests, scripts: measure here and now
            self._submit(functools.partial(service.measure, key, hdu, info=self.info),
                         functools.partial(self._measured, target))
            return
        known = service.result(key, version, hdu)
        if known is not None:
            self.param.update(quality=known, quality_pending=False, quality_error="")
            return
        self.param.update(quality=None, quality_pending=True, quality_error="")
        # Joins the measurement in progress (the quality service's, or another session's).
        self._when_done(service.measure_future(key, hdu, info=self.info),
                        functools.partial(self._measured, target))

    def _measured(self, target, result, error) -> None:
        if target != self._quality_for:
            return  # another frame is shown by now
        if error is not None:
            if not isinstance(error, QuickAnalysisError):
                log.error("measuring %s failed", target[0], exc_info=error)
            self.param.update(quality=None, quality_pending=False, quality_error=str(error))
            return
        self.param.update(quality=result, quality_pending=False, quality_error="")

    def take_quality(self, row: dict) -> None:
        """A ``quality`` event: the history row of a frame just measured."""
        key, version = row.get("key"), row.get("version")
        log.debug("session %x: quality of %s (shown for %r, reading %r)", id(self), key,
                  self._history_for, self._history_reading)
        if self.quality_service is not None and _under(key, self.directory):
            if self._history_for == self.directory:
                self.history = merge_history(self.history, row)
            elif self._history_reading == self.directory:
                # The read may have missed this row (measured just after it): keep it for the read.
                self._history_early.append(row)
        target = self._quality_target()
        if target is None or target[:2] != (key, version) or target[2] is not None:
            return
        if not self.quality_pending and self.quality is not None:
            return
        result = self.quality_service.result(key, version) if self.quality_service else None
        if result is not None:
            self._measured(target, result, None)
        elif row.get("error"):
            self._measured(target, None, QuickAnalysisError(row["error"]))

    def load_history(self) -> None:
        """Read the quality history of the folder once (worker thread); events keep it current."""
        service = self.quality_service
        if service is None:
            return
        directory = self.directory
        self._history_for, self._history_reading, self._history_early = None, directory, []
        log.debug("session %x: reading the history of %r", id(self), directory)
        self._submit(
            functools.partial(service.history.rows, directory or None),
            functools.partial(self._history_read, directory),
        )

    #: Former name (the page read the history every second; now once, then from events).
    poll_history = load_history

    def _history_read(self, directory, rows, error) -> None:
        if directory != self.directory:
            return  # the observer changed folder meanwhile: that read is on its way
        if error is not None:
            log.warning("reading the quality history failed: %s", error)
            rows = list(self.history)  # keep what is shown; events keep adding to it
        elif log.isEnabledFor(logging.DEBUG):  # the lists are the whole history: build them only then
            log.debug("session %x: history of %r read: %s + early %s", id(self), directory,
                      [row.get("key") for row in rows], [row.get("key") for row in self._history_early])
        for row in self._history_early:
            rows = merge_history(rows, row)
        self._history_for, self._history_reading, self._history_early = directory, None, []
        if rows != self.history:
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
