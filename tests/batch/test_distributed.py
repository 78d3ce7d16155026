"""A 2-worker LocalCluster on loopback gives exactly the in-process result (real engine, tiny model)."""

from __future__ import annotations

import json

import numpy as np
import psutil
import pytest
import tifffile

from napari_deepseg.batch import MANIFEST_NAME, predict
from napari_deepseg.batch.dask import open_client
from napari_deepseg.batch.work import model_loads
from napari_deepseg.errors import DeepsegError
from napari_deepseg.io import open_labels

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes on 127.0.0.1, closed (and checked gone) after."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    with open_client(workers=2) as c:
        yield c
    new = [p for p in me.children(recursive=True) if p.pid not in before and not _helper(p)]
    _, alive = psutil.wait_procs(new, timeout=10)
    assert not alive, f"worker processes left running: {alive}"


def _helper(proc: psutil.Process) -> bool:
    """multiprocessing's resource tracker lives as long as the test process: not a worker."""
    try:
        return "resource_tracker" in " ".join(proc.cmdline())
    except psutil.Error:
        return True


def _inputs(tmp_path):
    from napari_deepseg.samples import synthetic_nuclei

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        tifffile.imwrite(folder / f"im{i}.tif", synthetic_nuclei((64, 64), seed=i)[0])
    stack = np.stack([synthetic_nuclei((48, 56), seed=10 + i)[0] for i in range(6)])
    tifffile.imwrite(folder / "stack.tif", stack, photometric="minisblack")
    return folder


def test_two_workers_equal_in_process(tmp_path, model_file, client):
    folder = _inputs(tmp_path)
    opts = dict(model=model_file, device="cpu", zarr_threshold=20000, chunk_bytes=2 * 48 * 56 * 2)
    local = predict([folder], tmp_path / "local", **opts)
    remote = predict([folder], tmp_path / "remote", client=client, **opts)
    assert local.exit_code == remote.exit_code == 0
    assert sorted(remote.done) == sorted(local.done)
    for i in range(4):
        a = tifffile.imread(tmp_path / "local" / f"im{i}_labels.tif")
        b = tifffile.imread(tmp_path / "remote" / f"im{i}_labels.tif")
        np.testing.assert_array_equal(a, b)
    a, _ = open_labels(tmp_path / "local" / "stack_labels.zarr")
    b, _ = open_labels(tmp_path / "remote" / "stack_labels.zarr")
    np.testing.assert_array_equal(np.asarray(a[:]), np.asarray(b[:]))
    # each worker process loaded the model file once, however many tasks it ran
    loads = client.run(model_loads)
    assert sorted(loads.values()) == [1, 1]
    manifest = json.loads((tmp_path / "remote" / MANIFEST_NAME).read_text())
    pids = {e.get("pid") for e in manifest["files"].values() if e["kind"] == "tiff"}
    assert len(pids) == 2  # both workers took files


def test_worker_failure_is_recorded(tmp_path, model_file, client):
    folder = _inputs(tmp_path)
    summary = predict([folder], tmp_path / "out", model=model_file, client=client, channels=[5])
    assert summary.exit_code == 1
    assert len(summary.failed) == 5
    assert "channel" in summary.failed[0][1]


def test_open_client_argument_checks():
    with pytest.raises(DeepsegError, match="either"), open_client(workers=2, scheduler="tcp://127.0.0.1:1"):
        pass
    with pytest.raises(DeepsegError, match="cannot reach"), open_client(scheduler="tcp://127.0.0.1:9"):
        pass
