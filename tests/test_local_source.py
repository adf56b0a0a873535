"""Local folders (LocalSource), keys and the original service's (s3_directory, full_filename)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from numpy.testing import assert_array_equal

from components.core.synthetic import star_field, write_fits
from components.errors import ImageNotFound, InvalidRequest, UnsafeKey
from components.sources import FrameInfo, LocalSource, check_key, frame_key, is_image_name, load_image
from components.sources.base import check_directory, directories_of

OLD = 1_600_000_000  # a moment long past: files with this mtime are settled


def _touch(path: Path, content: bytes = b"SIMPLE  =", mtime: float | None = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _snapshot(root: Path) -> dict:
    return {
        str(path): (path.read_bytes(), path.lstat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "root"
    base.mkdir()
    return base


# --- keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "..",
        "../secret.fits",
        "data/../../secret.fits",
        "data/..",
        "/etc/passwd",
        "//server/share/a.fits",
        "C:/frames/a.fits",
        "c:a.fits",
        "data\\..\\..\\a.fits",
        "data\\a.fits",
        "a\x00.fits",
        "a.fits\x00.png",
        "data/\n.fits",
        ".hidden.fits",
        "data/.git/config",
    ],
)
def test_unsafe_keys_refused(key):
    with pytest.raises(UnsafeKey):
        check_key(key)


@pytest.mark.parametrize("key", ["", "/", ".", "./", "//"])
def test_empty_keys_refused(key):
    with pytest.raises(UnsafeKey):
        check_key(key)


def test_non_string_key_refused():
    with pytest.raises(InvalidRequest):
        check_key(5)


@pytest.mark.parametrize(
    "key, canonical",
    [("a.fits", "a.fits"), ("data//a.fits", "data/a.fits"), ("./data/./a.fits", "data/a.fits"),
     ("data/sub/a..b.fits", "data/sub/a..b.fits"), ("data/a b.fits", "data/a b.fits")],
)
def test_keys_are_made_canonical(key, canonical):
    assert check_key(key) == canonical


@pytest.mark.parametrize("directory", ["", None, ".", "./"])
def test_directory_may_be_root(directory):
    assert check_directory(directory) == ""


def test_absolute_directory_refused():
    with pytest.raises(UnsafeKey):
        check_directory("/data")


def test_directory_canonical_and_checked():
    assert check_directory("data/sim/") == "data/sim"
    with pytest.raises(UnsafeKey):
        check_directory("../x")


@pytest.mark.parametrize(
    "name, expected",
    [("a.fits", True), ("A.FITS", True), ("a.fit", True), ("a.fts", True), ("a.fits.fz", True),
     ("a.fz", True), ("a.fits.gz", True), ("a.fit.gz", True), ("a.fits.bz2", True), ("a.jpg", True),
     ("a.JPEG", True), ("a.png", True), ("a.txt", False), ("a.fits.tmp", False), ("a.fits.part", False),
     (".a.fits", False), ("fits", False), ("a.gz", False)],
)
def test_is_image_name(name, expected):
    assert is_image_name(name) is expected


def test_directories_of_includes_parents():
    assert directories_of(["x.fits", "a/b/c/y.fits", "a/z.fits"]) == ["a", "a/b", "a/b/c"]


# --- frame_key ------------------------------------------------------------------

ALLOWED = ("data", "info-images", "allsky")


def test_frame_key_joins():
    assert frame_key("data", "ogg0m406-kb27-20240101-0001-e91.fits.fz", ALLOWED) == (
        "data/ogg0m406-kb27-20240101-0001-e91.fits.fz"
    )


def test_frame_key_allows_subfolder():
    assert frame_key("allsky", "2024/01/a.jpg", ALLOWED) == "allsky/2024/01/a.jpg"


def test_frame_key_unknown_directory_message():
    with pytest.raises(InvalidRequest) as caught:
        frame_key("x", "a.fits", ALLOWED)
    assert str(caught.value) == "Unknown s3_directory 'x'; allowed: data, info-images, allsky"
    assert not isinstance(caught.value, UnsafeKey)


@pytest.mark.parametrize("directory", ["", "data/", "../data", None, "DATA"])
def test_frame_key_refuses_other_directories(directory):
    with pytest.raises(InvalidRequest):
        frame_key(directory, "a.fits", ALLOWED)


@pytest.mark.parametrize("filename", ["", "   ", "../a.fits", "/a.fits", "..", "a\\..\\b", "a\x00b", ".", None])
def test_frame_key_refuses_escaping_names(filename):
    with pytest.raises(UnsafeKey):
        frame_key("data", filename, ALLOWED)


# --- listing --------------------------------------------------------------------


def test_missing_root_has_no_frames(tmp_path):
    source = LocalSource(tmp_path / "absent")
    assert source.list_frames() == [] and source.directories() == []


def test_newest_first_by_mtime_then_name(root):
    _touch(root / "data" / "old.fits", mtime=OLD)
    _touch(root / "data" / "new.fits", mtime=OLD + 100)
    _touch(root / "data" / "b-tie.fits", mtime=OLD + 50)
    _touch(root / "data" / "a-tie.fits", mtime=OLD + 50)
    keys = [frame.key for frame in LocalSource(root).list_frames()]
    assert keys == ["data/new.fits", "data/b-tie.fits", "data/a-tie.fits", "data/old.fits"]


def test_listing_is_recursive_and_filtered(root):
    for name in ["a.fits", "b.FIT", "sub/c.fits.fz", "sub/deep/d.fits.gz", "e.fits.bz2", "f.jpg", "g.png",
                 "notes.txt", ".hidden.fits", ".cache/x.fits", "h.fits.tmp", "i.fits.part", "sub/.j.fits.abc.tmp"]:
        _touch(root / "data" / name)
    keys = sorted(frame.key for frame in LocalSource(root).list_frames())
    assert keys == sorted(f"data/{n}" for n in
                          ["a.fits", "b.FIT", "sub/c.fits.fz", "sub/deep/d.fits.gz", "e.fits.bz2", "f.jpg", "g.png"])


def test_list_one_directory(root):
    _touch(root / "data" / "a.fits")
    _touch(root / "allsky" / "b.jpg")
    assert [f.key for f in LocalSource(root).list_frames("allsky")] == ["allsky/b.jpg"]
    assert [f.key for f in LocalSource(root).list_frames("allsky/")] == ["allsky/b.jpg"]


def test_list_missing_directory_is_empty(root):
    assert LocalSource(root).list_frames("nothing/here") == []


def test_list_unsafe_directory_refused(root):
    with pytest.raises(UnsafeKey):
        LocalSource(root).list_frames("../")


def test_frame_info_fields(root):
    path = _touch(root / "data" / "sub" / "a.fits", b"x" * 123, mtime=OLD + 0.25)
    info = LocalSource(root).info("data/sub/a.fits")
    stat = path.stat()
    assert isinstance(info, FrameInfo)
    assert (info.key, info.directory, info.name, info.size) == ("data/sub/a.fits", "data/sub", "a.fits", 123)
    assert info.version == f"{stat.st_mtime_ns}-{stat.st_size}"
    assert info.modified.tzinfo is not None and info.modified.utcoffset().total_seconds() == 0
    assert abs(info.modified.timestamp() - (OLD + 0.25)) < 1e-3
    assert info.to_dict()["modified"].startswith("2020-09-13T12:26:40.25")


def test_info_key_is_canonical(root):
    _touch(root / "data" / "a.fits")
    assert LocalSource(root).info("data//./a.fits").key == "data/a.fits"


def test_version_changes_when_rewritten(root):
    path = _touch(root / "a.fits", b"1")
    source = LocalSource(root)
    first = source.info("a.fits").version
    _touch(path, b"22", mtime=OLD + 1)
    assert source.info("a.fits").version != first


def test_directories(root):
    _touch(root / "top.fits")
    _touch(root / "data" / "sim" / "a.fits.fz")
    _touch(root / "allsky" / "b.jpg")
    _touch(root / "empty" / "notes.txt")
    _touch(root / ".hidden" / "c.fits")
    assert LocalSource(root).directories() == ["allsky", "data", "data/sim"]


# --- half-written files -----------------------------------------------------------


def test_fresh_file_listed_once_its_size_is_stable(root):
    source = LocalSource(root, settle=30.0)
    path = _touch(root / "data" / "growing.fits", b"a" * 100, mtime=None)
    assert source.list_frames() == []  # first look: too fresh, size unknown
    with path.open("ab") as stream:  # still being written
        stream.write(b"b" * 100)
    assert source.list_frames() == []
    assert [f.key for f in source.list_frames()] == ["data/growing.fits"]  # same size twice


def test_settled_file_listed_at_once(root):
    _touch(root / "data" / "old.fits", mtime=time.time() - 5)
    assert [f.key for f in LocalSource(root, settle=0.5).list_frames()] == ["data/old.fits"]


def test_settle_zero_lists_fresh_files(root):
    _touch(root / "a.fits", mtime=None)
    assert len(LocalSource(root, settle=0).list_frames()) == 1


def test_fresh_file_still_readable_by_key(root):
    _touch(root / "a.fits", mtime=None)
    assert LocalSource(root, settle=30).info("a.fits").name == "a.fits"


# --- reading ------------------------------------------------------------------------


def test_read_returns_path_and_loads(root):
    frame = star_field((30, 40), n_stars=2, seed=1)
    (root / "data").mkdir()
    write_fits(frame, root / "data" / "a.fits")
    source = LocalSource(root)
    path = source.read("data/a.fits")
    assert isinstance(path, Path) and path.is_file()
    assert_array_equal(load_image(path).data, frame.data)


def test_missing_file_message(root):
    with pytest.raises(ImageNotFound) as caught:
        LocalSource(root).info("data/nothing.fits")
    assert str(caught.value) == "Image does not exist: data/nothing.fits."
    with pytest.raises(ImageNotFound):
        LocalSource(root).read("data/nothing.fits")


def test_folder_is_not_a_frame(root):
    (root / "dir.fits").mkdir()
    with pytest.raises(ImageNotFound):
        LocalSource(root).info("dir.fits")


def test_non_image_file_not_served(root):
    _touch(root / "secrets.txt", b"password")
    with pytest.raises(ImageNotFound):
        LocalSource(root).read("secrets.txt")


@pytest.mark.parametrize("key", ["../outside.fits", "/etc/passwd", "data/../../outside.fits", "a\x00.fits"])
def test_unsafe_key_refused_by_source(root, key):
    _touch(root.parent / "outside.fits")
    source = LocalSource(root)
    with pytest.raises(UnsafeKey):
        source.info(key)
    with pytest.raises(UnsafeKey):
        source.read(key)


def test_symlink_out_of_root_refused(root):
    outside = _touch(root.parent / "secret.fits")
    (root / "data").mkdir()
    (root / "data" / "link.fits").symlink_to(outside)
    source = LocalSource(root)
    with pytest.raises(UnsafeKey):
        source.info("data/link.fits")
    with pytest.raises(UnsafeKey):
        source.read("data/link.fits")
    assert source.list_frames() == []


def test_symlinked_folder_out_of_root_refused(root):
    outside = root.parent / "elsewhere"
    _touch(outside / "a.fits")
    (root / "data").symlink_to(outside, target_is_directory=True)
    source = LocalSource(root)
    with pytest.raises(UnsafeKey):
        source.info("data/a.fits")
    with pytest.raises(UnsafeKey):
        source.list_frames("data")
    assert source.list_frames() == []


def test_symlink_inside_root_allowed(root):
    target = _touch(root / "data" / "real.fits")
    (root / "data" / "alias.fits").symlink_to(target)
    source = LocalSource(root)
    assert source.info("data/alias.fits").size == target.stat().st_size
    assert sorted(f.key for f in source.list_frames()) == ["data/alias.fits", "data/real.fits"]


def test_root_itself_may_be_a_symlink(tmp_path):
    real = tmp_path / "real"
    _touch(real / "a.fits")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    assert LocalSource(tmp_path / "link").info("a.fits").key == "a.fits"


def test_files_never_modified(root):
    for i in range(3):
        write_fits(star_field((20, 30), n_stars=1, seed=i), root / f"f{i}.fits")
    for path in root.iterdir():
        os.utime(path, (OLD, OLD))
    before = _snapshot(root)
    source = LocalSource(root)
    for _ in range(2):
        for frame in source.list_frames():
            source.info(frame.key)
            load_image(source.read(frame.key)).data[:] = 0
        source.directories()
    assert _snapshot(root) == before
    assert sorted(os.listdir(root)) == ["f0.fits", "f1.fits", "f2.fits"]


# --- property: no key ever escapes ------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PIECES = st.sampled_from(["..", ".", "", "a", "b.fits", "/", "\\", "\x00", "C:", "~", ".x", " ", "%2e%2e"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=8).map("".join) | st.text(max_size=20))
def test_checked_keys_stay_inside_root(key):
    root = "/srv/root"
    try:
        canonical = check_key(key)
    except InvalidRequest:  # UnsafeKey is an InvalidRequest
        return
    resolved = os.path.normpath(os.path.join(root, canonical))
    assert resolved.startswith(root + "/")
    assert check_key(canonical) == canonical  # canonical form is stable
    assert "\x00" not in canonical and "\\" not in canonical
