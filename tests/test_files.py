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
