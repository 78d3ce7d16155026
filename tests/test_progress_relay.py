"""progress.drain and progress.relay: the one consumer loop and the one relay loop."""

from __future__ import annotations

import pytest

from napari_deepseg.progress import Cancelled, Progress, drain, relay


def _work(n: int, log: list[str]):
    try:
        for i in range(n):
            yield Progress("step", i + 1, n)
        return "done"
    finally:
        log.append("cleanup")


def test_relay_passes_events_through_a_transform_and_returns_the_result():
    log: list[str] = []

    def outer():
        return (yield from relay(_work(3, log), lambda e: None if e.done == 2 else e))

    seen = []
    assert drain(outer(), seen.append) == "done"
    assert [e.done for e in seen] == [1, 3]
    assert log == ["cleanup"]


def test_relay_stops_when_asked_and_closes_the_inner_work():
    log: list[str] = []
    seen: list[Progress] = []

    def outer():
        try:
            return (yield from relay(_work(10, log), should_stop=lambda: len(seen) >= 2))
        except Cancelled:
            return "stopped"

    assert drain(outer(), seen.append) == "stopped"
    assert len(seen) == 2
    assert log == ["cleanup"]


def test_closing_the_outer_generator_closes_the_inner_one():
    log: list[str] = []
    gen = relay(_work(10, log))
    next(gen)
    gen.close()
    assert log == ["cleanup"]


def test_drain_closes_the_work_when_its_callback_fails():
    log: list[str] = []

    def boom(event):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        drain(_work(5, log), boom)
    assert log == ["cleanup"]
