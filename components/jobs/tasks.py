"""The functions that run on Dask workers.

A task gets a frame key and the *source settings* (a small picklable dict,
see :func:`source_spec`), never an array: each worker opens the same source
(a shared folder, or S3) and reads the frame itself, and returns a small
result (a metrics dict, a statistics dict, one PNG movie frame).
"""

from __future__ import annotations

import io
import threading
from datetime import datetime, timezone

import numpy as np

from components.core import statistics, subregion
from components.core.quality import QualityThresholds, quality
from components.errors import QuickAnalysisError
from components.sources import FrameStore
from components.sources.cache import ImageCache
from components.sources.local import LocalSource
from components.sources.s3 import S3Source

__all__ = [
    "source_spec",
    "store_for",
    "worker_name",
    "observed_time",
    "measure_quality",
    "frame_statistics",
    "render_frame",
    "STAT_FIELDS",
]

#: Keys of a frame's statistics, as POST /statistics answers them.
STAT_FIELDS = ("median", "mean", "mode", "min", "max", "std", "median_abs_deviation")
#: Decoded bytes a worker keeps (a job reads each frame once; a little cache is enough).
WORKER_CACHE_BYTES = 512 * 1024**2

_stores: dict[tuple, FrameStore] = {}
_stores_lock = threading.Lock()


def source_spec(
    root=None,
    bucket: str | None = None,
    prefix: str = "",
    region: str | None = None,
    endpoint_url: str | None = None,
    directories=("data", "info-images", "allsky"),
) -> dict:
    """Settings a worker needs to open the frame source: a local root, or S3."""
    if bucket:
        spec = {"kind": "s3", "bucket": bucket, "prefix": prefix or "", "region": region,
                "endpoint_url": endpoint_url}
    else:
        from pathlib import Path

        spec = {"kind": "local", "root": str(Path(root).resolve())}
    spec["directories"] = list(directories)
    return spec


def store_for(spec: dict) -> FrameStore:
    """The worker process's store for ``spec`` (built once per process)."""
    identity = tuple(sorted((name, str(value)) for name, value in spec.items()))
    with _stores_lock:
        store = _stores.get(identity)
        if store is None:
            if spec["kind"] == "s3":
                source = S3Source(spec["bucket"], prefix=spec.get("prefix", ""),
                                  region=spec.get("region"), endpoint_url=spec.get("endpoint_url"))
            else:
                # settle=0: a job reads frames already listed by the server.
                source = LocalSource(spec["root"], settle=0)
            store = _stores[identity] = FrameStore(
                source, ImageCache(WORKER_CACHE_BYTES), allowed_directories=spec.get("directories", ())
            )
        return store


def worker_name() -> str:
    """Address of the Dask worker running this task ("local" outside a worker)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def observed_time(image, fallback: datetime) -> float:
    """Epoch seconds of DATE-OBS (UTC), else of ``fallback`` (as app.quality_service does)."""
    from astropy.time import Time

    value = image.header.get("DATE-OBS") if image.header is not None else None
    if value:
        try:
            return float(Time(str(value), scale="utc").unix)
        except (ValueError, TypeError):
            pass
    return fallback.timestamp()


def measure_quality(key: str, spec: dict, options: dict) -> dict:
    """Quality of one whole frame, as the server's quality service measures it.

    ``options``: ``thresholds`` (fields of :class:`QualityThresholds`),
    ``saturation`` and ``pixel_scale`` fallbacks. The star list is left out
    (the history keeps only the metrics). A frame that cannot be read gives
    ``{"error": ...}``.
    """
    store = store_for(spec)
    info = store.info(key)
    result = {"key": key, "version": info.version, "worker": worker_name(),
              "observed": info.modified.timestamp()}
    try:
        image = store.load(key)
        metrics = quality(
            image.data, image.header, wcs=image.wcs, saturation=options.get("saturation"),
            pixel_scale=options.get("pixel_scale"),
            thresholds=QualityThresholds(**(options.get("thresholds") or {})),
        )
    except QuickAnalysisError as error:
        result["error"] = str(error)
        return result
    metrics.pop("stars", None)
    result["observed"] = observed_time(image, info.modified)
    result["metrics"] = metrics
    return result


def frame_statistics(key: str, spec: dict, region: tuple[float, float, float, float] | None) -> dict:
    """The /statistics answer of one frame (or of a relative box ``(x0, y0, x1, y1)``)."""
    store = store_for(spec)
    info = store.info(key)
    result = {"key": key, "worker": worker_name(), "observed": info.modified.timestamp()}
    try:
        image = store.load(key)
    except QuickAnalysisError as error:
        result["error"] = str(error)
        return result
    data = image.data if region is None else subregion(image.data, *region)
    stats = statistics(data)
    result["stats"] = {name: stats[name] for name in STAT_FIELDS}
    result["observed"] = observed_time(image, info.modified)
    return result


def _to_rgb(data: np.ndarray, interval: str, stretch: str, cmap: str) -> np.ndarray:
    # The dashboard's own display rules (components.views.display is pure numpy).
    from components.views import display

    values = display.sample(data)
    finite = np.asarray(data, dtype=np.float64)
    low, high = display.interval_limits(values, interval)
    table = display.equalization_table(values, low, high) if stretch == "histeq" else None
    t = (finite - low) / (high - low)
    t = np.where(np.isfinite(t), t, 0.0)
    position = display.stretch_values(stretch, t, table)
    rgb = display._rgb(cmap)
    index = np.clip(np.rint(position * (len(rgb) - 1)), 0, len(rgb) - 1).astype(np.intp)
    return rgb[index].astype(np.uint8)


def render_frame(key: str, spec: dict, options: dict) -> dict:
    """One movie frame: PNG bytes of the frame, at most ``max_side`` pixels a side, stamped.

    ``options``: ``interval``, ``stretch``, ``cmap`` (the dashboard's names),
    ``max_side``. Row 0 of the frame is the top of the picture, as on the
    dashboard's default orientation. The stamp is the frame's name and
    observing time (UTC).
    """
    from PIL import Image as PILImage, ImageDraw, ImageFont

    store = store_for(spec)
    info = store.info(key)
    result = {"key": key, "worker": worker_name(), "observed": info.modified.timestamp()}
    try:
        image = store.load(key)
    except QuickAnalysisError as error:
        result["error"] = str(error)
        return result
    data = image.data
    max_side = int(options.get("max_side", 720))
    step = max(1, int(np.ceil(max(data.shape) / max_side)))
    rgb = _to_rgb(data[::step, ::step], options.get("interval", "zscale"),
                  options.get("stretch", "linear"), options.get("cmap", "grey"))
    picture = PILImage.fromarray(rgb, "RGB")
    observed = observed_time(image, info.modified)
    when = datetime.fromtimestamp(observed, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    draw = ImageDraw.Draw(picture)
    size = max(10, picture.height // 30)
    font = ImageFont.load_default(size=size)
    text = f"{key}  {when}"
    box = draw.textbbox((6, 4), text, font=font)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    result.update(png=out.getvalue(), observed=observed, width=picture.width, height=picture.height)
    return result
