"""Running batch work on dask.distributed: an existing cluster or a LocalCluster on loopback.

Work units (:mod:`.work`) are submitted as plain tasks that name files by path; each worker
process loads the model once (:func:`~napari_deepseg.batch.work.get_model` caches it per
process), reads its input lazily and writes its own output, so only small dicts travel back.
Input and output folders must therefore be visible to every worker at the same paths (a shared
filesystem on a real cluster).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..errors import DeepsegError


@contextlib.contextmanager
def open_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` (``tcp://HOST:PORT``) or to a new LocalCluster.

    Args:
        workers: start a LocalCluster of this many single-threaded worker *processes* bound to
            127.0.0.1 (torch in each uses ``cpu_count // workers`` threads).
        scheduler: address of an existing scheduler; its workers need napari-deepseg installed.

    The client, and the LocalCluster if one was started, are closed on exit (also on errors and
    cancellation), so no worker process outlives the batch.
    """
    from distributed import Client, LocalCluster

    if (workers is None) == (scheduler is None):
        raise DeepsegError("give either workers or a scheduler address, not both")
    cluster = None
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as err:
                raise DeepsegError(
                    f"cannot reach the dask scheduler at {scheduler} ({err}); check the address "
                    "(tcp://HOST:PORT) and that the scheduler is running"
                ) from None
        else:
            if workers < 1:
                raise DeepsegError(f"--workers must be at least 1, got {workers}")
            threads = max(1, (os.cpu_count() or 1) // workers)
            env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
                env=env,
            )
            client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def submit(client: Any, func: Any, *args: Any, key_prefix: str = "deepseg") -> Any:
    """Submit ``func(*args)`` as a pure=False task (each unit runs exactly once per submit)."""
    return client.submit(func, *args, pure=False, key=f"{key_prefix}-{os.urandom(6).hex()}")


def iter_completed(futures: list[Any]) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Yield ``(future, result, error)`` as futures finish; errors are returned, not raised."""
    from distributed import as_completed

    for future in as_completed(futures):
        try:
            yield future, future.result(), None
        except Exception as err:  # a task's own failure: handed to the caller to record
            yield future, None, err
