"""The post-processing pipeline: the network works on the next unit while the last one becomes
instances; results and events as without it; at most one unit in flight; cancel stays quick."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from napari_deepseg.inference import job as jobmod
from napari_deepseg.inference import pipeline, segment, segment_iter
from napari_deepseg.inference.pipeline import PostPipeline
from napari_deepseg.inference.runner import TileRunner
from napari_deepseg.samples import synthetic_nuclei

OPTS = {"device": "cpu", "outputs": ("classes", "instances"), "tile": 64, "overlap": 8}


def _stack(n: int = 3, side: int = 96) -> np.ndarray:
    return np.stack([synthetic_nuclei((side, side), seed=i)[0] for i in range(n)])


@pytest.mark.parametrize("block", [None, 256])  # planes of a stack, blocks of a plane
def test_the_pipeline_gives_the_same_result_and_events(tiny_unet, monkeypatch, block):
    image = _stack() if block is None else synthetic_nuclei((520, 470), seed=2)[0]
    runs = {}
    for on in (False, True):
        monkeypatch.setattr(jobmod.Job, "pipelined", on)
        gen = segment_iter(image, tiny_unet, block=block, **OPTS)
        events = []
        try:
            while True:
                events.append(next(gen))
        except StopIteration as stop:
            runs[on] = (stop.value, [(e.stage, e.done) for e in events if e.stage in ("planes", "blocks")])
    (off, off_events), (on, on_events) = runs[False], runs[True]
    np.testing.assert_array_equal(on.classes, off.classes)
    np.testing.assert_array_equal(on.instances, off.instances)
    assert on_events == off_events
    assert on.instances.max() > 0


def test_post_processing_runs_beside_the_network(tiny_unet, monkeypatch):
    """While a unit's (slowed) post-processing runs, the network already works on the next."""
    spans: dict[str, list[tuple[float, float]]] = {"post": [], "net": []}
    post = pipeline.instances_from_probabilities
    run = TileRunner.run

    def slow_post(*args, **kwargs):
        t0 = time.perf_counter()
        time.sleep(0.3)
        out = post(*args, **kwargs)
        spans["post"].append((t0, time.perf_counter()))
        return out

    def timed_run(self, batch):
        t0 = time.perf_counter()
        out = run(self, batch)
        spans["net"].append((t0, time.perf_counter()))
        return out

    monkeypatch.setattr(pipeline, "instances_from_probabilities", slow_post)
    monkeypatch.setattr(TileRunner, "run", timed_run)
    segment(_stack(3), tiny_unet, **OPTS)
    assert len(spans["post"]) == 3
    first_post = spans["post"][0]
    assert any(first_post[0] < t0 < first_post[1] for t0, _ in spans["net"])  # overlapped
    # at most one unit in flight: unit n + 1's post-processing starts after unit n's ended
    assert all(b[0] >= a[1] for a, b in zip(spans["post"], spans["post"][1:]))


def test_cancel_waits_for_at_most_one_unit_and_stops_the_thread(tiny_unet, monkeypatch):
    post = pipeline.instances_from_probabilities

    def slow_post(*args, **kwargs):
        time.sleep(0.4)
        return post(*args, **kwargs)

    monkeypatch.setattr(pipeline, "instances_from_probabilities", slow_post)
    before = {t.ident for t in threading.enumerate()}
    gen = segment_iter(_stack(6), tiny_unet, **OPTS)
    for event in gen:
        if event.stage == "planes":
            break
    t0 = time.perf_counter()
    gen.close()
    assert time.perf_counter() - t0 < 1.0
    time.sleep(0.05)
    new = [t for t in threading.enumerate() if t.ident not in before]
    assert not [t for t in new if t.name.startswith("deepseg-post")]


def test_a_failure_in_post_processing_reaches_the_caller():
    queue = PostPipeline(overlap=True)
    queue.submit("a", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        queue.submit("b", lambda: 2)
    queue.close()


def test_results_come_back_in_order_with_or_without_a_thread():
    for overlap in (False, True):
        queue = PostPipeline(overlap)
        got = [queue.submit(i, (lambda i=i: i * 10) if i != 2 else None) for i in range(4)]
        got.append(queue.collect())
        queue.close()
        assert got == [None, (0, 0), (1, 10), (2, None), (3, 30)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_pipeline_on_a_gpu_matches_the_cpu(tiny_unet, monkeypatch):
    image = _stack(4, 128)
    cpu = segment(image, tiny_unet, precision="fp32", **OPTS)
    gpu = segment(image, tiny_unet, precision="fp32", **{**OPTS, "device": "cuda"})
    np.testing.assert_array_equal(gpu.classes, cpu.classes)
    assert abs(int(gpu.instances.max()) - int(cpu.instances.max())) <= 1
