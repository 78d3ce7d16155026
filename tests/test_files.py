"""Atomic writes: the destination is either the old file or the complete new one."""

from __future__ import annotations

import pytest

from napari_deepseg._files import atomic_path


def test_atomic_path_renames_on_success(tmp_path):
    dest = tmp_path / "sub" / "out.txt"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent
        assert tmp != dest
        tmp.write_text("new")
        assert not dest.exists()
    assert dest.read_text() == "new"
    assert list(dest.parent.iterdir()) == [dest]


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")

    def write_then_interrupt():
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_then_interrupt()
    assert dest.read_text() == "old"
    assert list(tmp_path.iterdir()) == [dest]


def test_atomic_path_gives_the_mode_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    dest = tmp_path / "atomic.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text("x")
    assert dest.stat().st_mode == plain.stat().st_mode


@pytest.mark.parametrize(
    ("platform", "kind", "expected"),
    [
        ("linux", "data", ".local/share/napari-deepseg/x"),
        ("linux", "cache", ".cache/napari-deepseg/x"),
        ("darwin", "data", "Library/Application Support/napari-deepseg/x"),
        ("darwin", "cache", "Library/Caches/napari-deepseg/x"),
        ("win32", "data", "AppData/Roaming/napari-deepseg/x"),
        ("win32", "cache", "AppData/Local/napari-deepseg/x"),
    ],
)
def test_user_dir_follows_the_platform_and_its_variable(platform, kind, expected, monkeypatch, tmp_path):
    import sys

    from napari_deepseg._files import user_dir

    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("APPDATA", "LOCALAPPDATA", "XDG_DATA_HOME", "XDG_CACHE_HOME", "DEEPSEG_TEST_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert user_dir(kind, "DEEPSEG_TEST_DIR", "x") == tmp_path / expected
    monkeypatch.setenv("DEEPSEG_TEST_DIR", str(tmp_path / "given"))
    assert user_dir(kind, "DEEPSEG_TEST_DIR", "x") == tmp_path / "given"


def test_a_file_set_finds_an_input_under_any_name(tmp_path):
    """guard_output with a FileSet of a batch's inputs (identities taken once): the same file
    under another name, a hard link or a symlink is an input; other names are not."""
    import os

    from napari_deepseg._files import FileSet, guard_output
    from napari_deepseg.errors import DeepsegError

    sources = []
    for i in range(3):
        path = tmp_path / f"in{i}.tif"
        path.write_bytes(b"x")
        sources.append(path)
    inputs = FileSet([*sources, None])
    os.link(sources[1], tmp_path / "hard.tif")
    (tmp_path / "soft.tif").symlink_to(sources[2])
    for same in (sources[0], tmp_path / "." / "in0.tif", tmp_path / "hard.tif", tmp_path / "soft.tif"):
        assert same in inputs
        with pytest.raises(DeepsegError, match="is an input of this run"):
            guard_output(same, what="labels output", inputs=inputs, overwrite=True)
    assert tmp_path / "new.tif" not in inputs
    assert guard_output(tmp_path / "new.tif", what="labels output", inputs=inputs) == tmp_path / "new.tif"
