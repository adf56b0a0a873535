"""/lineprofiledisplay over real HTTP: the PNG shows the frame, the line and the profile, and stays small.

The picture's geometry comes from :func:`app.profile_png.layout`; the pixels
are checked against what the frames hold (a dark left half and a bright right
half), so a picture that drew the wrong frame, the line in the wrong place or
no profile fails.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.io import fits
from PIL import Image

from app.profile_png import COLOURS, layout
from conftest import PROJECT, ServerProcess, free_port, wait_for_http

#: The bound the PNG must stay within, whatever the frame.
MAX_PNG_BYTES = 300_000
HALVES_SHAPE = (300, 400)  # rows, columns
RED, GREEN, BLUE = COLOURS["line"], COLOURS["start"], COLOURS["profile"]


def _write(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data).writeto(path)
    # An old modification time: the local source lists fresh files once they settle.
    os.utime(path, (time.time() - 120, time.time() - 120))


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """One real server (``python -m app.cli serve``) for the module, as conftest's start_server runs it."""
    root = tmp_path_factory.mktemp("lineprofiledisplay")
    data = root / "data"
    halves = np.full(HALVES_SHAPE, 100.0, dtype=np.float32)
    halves[:, HALVES_SHAPE[1] // 2:] = 1000.0
    _write(data / "halves.fits", halves)
    rng = np.random.default_rng(8)
    # Uniform noise over the whole uint16 range: nothing to compress, the worst case for size.
    _write(data / "noise.fits", rng.integers(0, 65536, size=(2048, 3072), dtype=np.uint16))
    _write(data / "row.fits", np.arange(500, dtype=np.float32).reshape(1, 500))
    _write(data / "nan.fits", np.full((40, 50), np.nan, dtype=np.float32))
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--root", str(root), "--port", str(port),
         "--address", "127.0.0.1", "--no-demo"],
        cwd=PROJECT, env={**os.environ, "QA_QUALITY": "false"},
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    server = ServerProcess(root, port, process, log)
    try:
        try:
            wait_for_http(server.url + "/health", process, timeout=600)  # a heavily shared machine
        except Exception as error:
            raise RuntimeError(f"{error}\n--- server log ---\n{log.read_text()}") from error
        yield server.url
    finally:
        server.stop()


def fetch_png(url: str, name: str, x0: float, y0: float, x1: float, y1: float) -> tuple[bytes, Image.Image]:
    query = {"filename": name, "s3_directory": "data", "x0": x0, "y0": y0, "x1": x1, "y1": y1,
             "format": "png"}
    response = requests.get(url + "/lineprofiledisplay", params=query, timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    picture = Image.open(io.BytesIO(response.content))
    picture.load()
    return response.content, picture


def rgb(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB"))


def is_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(pixels == np.array(colour, dtype=np.uint8), axis=-1)


def test_frame_line_and_profile_are_drawn(url):
    # A horizontal line across the middle row, from the dark half to the bright half.
    content, picture = fetch_png(url, "halves.fits", 0.0, 0.5, 1.0, 0.5)
    geometry = layout(HALVES_SHAPE)
    assert picture.size == (geometry.width, geometry.height)
    assert len(content) <= MAX_PNG_BYTES
    pixels = rgb(picture)
    left, top, right, bottom = geometry.frame
    frame = pixels[top:bottom, left:right].astype(int)
    quarter = (bottom - top) // 4
    # The frame's area shows the frame: grey, dark on the left, bright on the right.
    dark, bright = frame[:quarter, : frame.shape[1] // 3], frame[:quarter, -frame.shape[1] // 3:]
    assert np.all(dark[..., 0] == dark[..., 1]) and np.all(bright[..., 0] == bright[..., 2])
    assert dark.mean() < 60 and bright.mean() > 200

    # The line: red along the middle row, between the markers; no red far from it.
    _, line_y = geometry.to_picture(0, 0.5 * (HALVES_SHAPE[0] - 1), HALVES_SHAPE)
    row = round(line_y)
    red = is_colour(pixels, RED)
    for fraction in (0.2, 0.4, 0.6, 0.8):
        x = round(left + fraction * (right - left))
        assert red[row - 1:row + 2, x].any(), (fraction, row, x)
    assert not red[top:top + quarter, left:right].any()
    assert not red[bottom - quarter:bottom, left:right].any()
    start_x, start_y = geometry.to_picture(0, 0.5 * (HALVES_SHAPE[0] - 1), HALVES_SHAPE)
    green = is_colour(pixels, GREEN)
    assert green[round(start_y) - 3:round(start_y) + 4, round(start_x) - 3:round(start_x) + 4].any()

    # The profile: 100 then 1000, so low in the plot's left part and high in its right part.
    p_left, p_top, p_right, p_bottom = geometry.plot
    curve = is_colour(pixels[p_top:p_bottom, p_left:p_right], BLUE)
    columns = curve.shape[1]
    rows_left = np.nonzero(curve[:, : columns * 2 // 5])[0]
    rows_right = np.nonzero(curve[:, -columns * 2 // 5:])[0]
    height = p_bottom - p_top
    assert rows_left.size and rows_right.size
    assert rows_left.min() > height * 0.8  # near the bottom
    assert rows_right.max() < height * 0.2  # near the top
    assert not is_colour(pixels[:p_top], BLUE).any()  # the profile stays in its box


def test_line_follows_the_request(url):
    # The diagonal from the top-left corner to the bottom-right one.
    _, picture = fetch_png(url, "halves.fits", 0.0, 0.0, 1.0, 1.0)
    geometry = layout(HALVES_SHAPE)
    red = is_colour(rgb(picture), RED)
    rows, columns = HALVES_SHAPE
    for fraction in (0.25, 0.5, 0.75):
        x, y = geometry.to_picture(fraction * (columns - 1), fraction * (rows - 1), HALVES_SHAPE)
        assert red[round(y) - 2:round(y) + 3, round(x) - 2:round(x) + 3].any(), fraction
    # Nothing red where the horizontal line of the other test runs, away from the diagonal.
    left, top, right, bottom = geometry.frame
    middle = (top + bottom) // 2
    assert not red[middle - 1:middle + 2, left + 5:left + (right - left) // 4].any()


def test_png_stays_small_on_incompressible_frames(url):
    content, picture = fetch_png(url, "noise.fits", 0.05, 0.1, 0.95, 0.9)
    assert picture.mode == "P"  # an 8-bit palette picture, not 24-bit RGB
    assert len(content) <= MAX_PNG_BYTES, len(content)
    geometry = layout((2048, 3072))
    assert geometry.step > 1 and picture.size == (geometry.width, geometry.height)
    # The frame's area is filled with noise, not left blank.
    left, top, right, bottom = geometry.frame
    assert np.asarray(picture.convert("L"))[top:bottom, left:right].std() > 20


@pytest.mark.parametrize("name", ["row.fits", "nan.fits"])
def test_degenerate_frames_still_draw(url, name):
    content, picture = fetch_png(url, name, 0.1, 0.5, 0.9, 0.5)
    assert picture.width > 300 and picture.height > 300
    assert len(content) <= MAX_PNG_BYTES
    red = is_colour(rgb(picture), RED)
    left, top, right, bottom = layout((1, 500) if name == "row.fits" else (40, 50)).frame
    assert red[top:bottom, left:right].any()
