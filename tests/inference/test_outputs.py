"""Outputs past the memory limit live in scratch files mapped into memory (inference.outputs)."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from napari_deepseg.inference import memory, outputs, segment
from napari_deepseg.inference.outputs import OutputStore

from .test_blocks import CPU, _Oracle, _plane, _same_objects


def _store(room: int, monkeypatch, tmp_path) -> OutputStore:
    monkeypatch.setattr(memory, "in_use", lambda: 0)
    return OutputStore(2 * room, True, tmp_path)  # the room for outputs is half the limit


def test_store_keeps_what_fits_in_memory_and_the_rest_on_disk(monkeypatch, tmp_path):
    store = _store(1000, monkeypatch, tmp_path)
    assert store.reserve(600) is False
    assert store.reserve(600) is True  # 400 left: this group goes to disk
    assert store.reserve(10) is True  # and every later one (a run's outputs stay together)
    assert store.where == "disk"
    array = store.zeros((3, 4), np.uint32)
    assert type(array) is np.ndarray
    assert array.flags.writeable
    assert not array.any()
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing is left behind


def test_store_without_disk_space_stays_in_memory(monkeypatch, tmp_path):
    store = _store(10, monkeypatch, tmp_path)
    monkeypatch.setattr(outputs, "free_disk", lambda path: 0)
    assert store.reserve(10**6) is False
    assert store.no_space
    assert store.where == "memory"


def test_released_pages_leave_the_resident_set_and_keep_their_values(monkeypatch, tmp_path):
    store = _store(0, monkeypatch, tmp_path)
    assert store.reserve(1) is True
    array = store.zeros((64, 1024, 1024), np.uint8)  # 64 MiB
    proc = psutil.Process()
    before = proc.memory_info().rss
    array[:] = np.arange(64, dtype=np.uint8)[:, None, None]
    written = proc.memory_info().rss
    store.release()
    released = proc.memory_info().rss
    assert written - before > 48 * 2**20  # the check can fail: written pages are resident
    assert written - released > 48 * 2**20
    np.testing.assert_array_equal(array[:, 5, 7], np.arange(64))  # read back from the file


def test_scratch_dir_avoids_ram_filesystems(monkeypatch, tmp_path):
    monkeypatch.setenv(outputs.SCRATCH_ENV, str(tmp_path / "given"))
    assert outputs.scratch_dir() == tmp_path / "given"
    monkeypatch.delenv(outputs.SCRATCH_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(outputs, "_filesystem_type", lambda path: "tmpfs")
    assert outputs.scratch_dir() == tmp_path / ".cache" / "napari-deepseg" / "scratch"
    monkeypatch.setattr(outputs, "_filesystem_type", lambda path: "ext4")
    assert outputs.scratch_dir() != tmp_path / ".cache" / "napari-deepseg" / "scratch"


def test_filesystem_type_reads_the_longest_mount(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n")
    assert outputs._filesystem_type(outputs.Path("/home/user/x"), mounts) == "ext4"
    assert outputs._filesystem_type(outputs.Path("/tmp/x"), mounts) == "tmpfs"
    assert outputs._filesystem_type(outputs.Path("/tmpx"), mounts) == "ext4"
    assert outputs._filesystem_type(tmp_path, tmp_path / "missing") is None


@pytest.mark.parametrize("diameter", ["off", 8.0])  # own scale, and a rescaled run (grid 2x)
def test_segment_past_the_limit_returns_the_same_result_from_scratch_files(diameter, monkeypatch, tmp_path):
    """Under a limit the outputs do not fit, segment() keeps them in scratch files: the same
    classes and objects as in memory, as plain numpy arrays, and meta says where they were."""
    monkeypatch.setenv(outputs.SCRATCH_ENV, str(tmp_path))
    image, _ = _plane((700, 700), seed=7)
    model = _Oracle()
    model.deepseg_meta.object_diameter = 16.0
    opts = {"outputs": ("classes", "instances"), "tile": 128, "block": 256, **CPU}
    opts["object_diameter"] = diameter
    in_memory = segment(image, model, **opts)
    on_disk = segment(image, model, max_memory="1M", **opts)
    assert in_memory.meta["outputs_stored"] == "memory"
    assert on_disk.meta["outputs_stored"] == "disk"
    assert type(on_disk.instances) is np.ndarray
    assert on_disk.instances.shape == image.shape
    np.testing.assert_array_equal(on_disk.classes, in_memory.classes)
    np.testing.assert_array_equal(on_disk.instances, in_memory.instances)
    _same_objects(on_disk.instances, in_memory.instances)
    assert on_disk.instances.max() > 20
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_scratch_folder_keeps_outputs_in_memory(monkeypatch, tmp_path):
    """$DEEPSEG_SCRATCH that cannot be made: the outputs stay in memory (the run warns), no crash."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(outputs.SCRATCH_ENV, str(blocker / "scratch"))
    monkeypatch.setattr(memory, "in_use", lambda: 0)
    store = OutputStore(2, True)
    assert store.reserve(10**6) is False
    assert store.no_space
    assert store.directory == blocker / "scratch"


def test_a_scratch_file_that_cannot_be_made_is_a_one_line_error(monkeypatch, tmp_path):
    from napari_deepseg.errors import DeepsegError

    store = _store(0, monkeypatch, tmp_path)
    assert store.reserve(1) is True
    store.directory = tmp_path / "gone"  # removed after the decision
    with pytest.raises(DeepsegError, match=r"cannot create a scratch file in .*gone.*DEEPSEG_SCRATCH"):
        store.zeros((10, 10), np.uint8)
    store.directory = tmp_path
    monkeypatch.setattr(outputs.os, "ftruncate", lambda fd, n: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(DeepsegError, match=r"cannot map a 0.0 GB scratch file.*No space"):
        store.zeros((10, 10), np.uint8)
    assert list(tmp_path.iterdir()) == []  # the failed file is not left behind
