"""Running on a dask.distributed cluster: a local one started for the run, or an existing one.

Everything dask computes while a :class:`distributed.Client` is active runs on its cluster, so the
Python API and the ``cube.unmixsr`` accessor need nothing more than ``with Client(...):``.
:func:`client_for` is what the CLI's ``--workers`` and ``--scheduler`` options use.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import dask

from .errors import ParameterError


class DistributedError(ParameterError):
    """dask.distributed is missing, or the cluster options are invalid or unreachable."""


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise DistributedError(
            "running on a dask cluster needs the 'distributed' package: "
            "pip install xr_unmixsr[distributed]"
        ) from exc
    return distributed


@contextlib.contextmanager
def client_for(
    workers: int | None = None, scheduler: str | None = None, *, timeout: float = 10.0
) -> Iterator[Any]:
    """A context in which dask computations run on a cluster, or the local threads.

    Args:
        workers: start a ``LocalCluster`` of this many worker processes (one thread each) for the
            duration of the context, and close it after.
        scheduler: connect to the scheduler at this address (e.g. ``tcp://10.0.0.5:8786``).
        timeout: seconds to wait for the scheduler to answer.

    Yields:
        The active ``distributed.Client``, or ``None`` (neither option: dask's threaded
        scheduler, as without this context).

    Raises:
        DistributedError: both options given, ``workers < 1``, ``distributed`` not installed, or
            the scheduler not reachable.
    """
    if workers is not None and scheduler is not None:
        raise DistributedError(
            "give either workers (a local cluster) or scheduler (an existing one), not both"
        )
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and workers < 1:
        raise DistributedError(f"workers={workers} must be at least 1")
    distributed = _import_distributed()
    # the clients are not made dask's default (set_as_default=False): a Client that fails to
    # connect would otherwise stay registered, and every later computation of the process would
    # wait on it; the working client is made the scheduler for this context only (scheduled_on)
    if workers is not None:
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                # GDAL's block cache defaults to 5 % of RAM per process; writes are tile-aligned
                env={"GDAL_CACHEMAX": "64"},
            ) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
            scheduled_on(client),
        ):
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        # the half-made Client lives on in the traceback's frames; collected later, at random,
        # its __del__ can run inside the next Client's start and deadlock distributed's loop
        # runner (seen in the test suite): drop the frames and collect it now
        exc.__traceback__ = None
        gc.collect()
        raise DistributedError(
            f"cannot connect to the dask scheduler at {scheduler!r}: {exc}; "
            "check the address (e.g. tcp://host:8786) and that the scheduler is running"
        ) from exc
    with client, scheduled_on(client):
        yield client


@contextlib.contextmanager
def scheduled_on(client: Any) -> Iterator[None]:
    """Make dask compute on ``client`` within the block (in this thread), as its current client.

    The client object itself is not put into dask's configuration (``dask.config.set(
    scheduler=client)``): a nanny that restarts a lost worker copies the configuration into the
    new process, and a client cannot be copied, so the worker would never come back.
    """
    with client.as_current(), dask.config.set(scheduler="dask.distributed"):
        yield


def active_client() -> Any | None:
    """The ``distributed.Client`` that dask computes on now, or None (a local scheduler).

    Every way of choosing a cluster counts: a client made the default (``with Client(...):``),
    :func:`scheduled_on` (what :func:`client_for` uses) and ``dask.config.set(scheduler=client)``.
    """
    get = dask.base.get_scheduler()
    client = getattr(get, "__self__", None)
    return client if type(client).__module__.startswith("distributed") else None


def _active_keys(dask_worker: Any) -> list[str]:
    """The keys of the tasks a worker's threads are running (``client.run`` passes the worker).

    The worker's own view: a task the scheduler has cancelled and forgotten keeps running in its
    thread until it returns, and the scheduler no longer lists it.
    """
    return [str(k) for k in list(dask_worker.active_threads.values())]


def _keys_running(client: Any, keys: set[str]) -> bool:
    running = client.run(_active_keys, on_error="ignore")
    return any(k in keys for ks in running.values() for k in ks)


_sigint = threading.Event()


def _on_sigint(signum: int, frame: Any) -> None:
    _sigint.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_remembered() -> Iterator[None]:
    """Within the block (main thread only), Ctrl-C is also recorded, for :func:`compute_on_cluster`.

    Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; when that is a
    garbage-collector callback (distributed installs one in a process that hosts its scheduler),
    the exception is printed and dropped, and the run would go on as if never interrupted. The
    CLI runs every command in this block; :func:`compute_on_cluster` enters it too (nested
    blocks keep the outer one's record).
    """
    current = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or current in (
        _on_sigint,
        signal.SIG_IGN,  # a process that ignores Ctrl-C (started in the background) keeps doing so
    ):
        yield
        return
    _sigint.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be restored
            signal.signal(signal.SIGINT, previous)
        _sigint.clear()  # the record belongs to this block: later runs must not see it


def _wait_unless_interrupted(futures: list[Any], progress: bool) -> None:
    """Wait for ``futures``; raise ``KeyboardInterrupt`` if Ctrl-C was recorded meanwhile."""
    if progress:
        _import_distributed().progress(futures)
    while not _sigint.is_set() and not all(f.done() for f in futures):
        time.sleep(0.1)
    if _sigint.is_set():
        raise KeyboardInterrupt


def compute_on_cluster(
    client: Any, collections: Sequence[Any], *, progress: bool = False, drain_timeout: float = 120.0
) -> list[Any]:
    """Compute dask collections on ``client``'s cluster and return their results.

    If the computation fails or is interrupted (an error in a task, Ctrl-C), its tasks are
    cancelled and the call waits (up to ``drain_timeout`` seconds) until none of them runs on a
    worker any more before it re-raises: a task still running could otherwise go on writing into
    an output that the caller is about to remove. A Ctrl-C that Python dropped (see
    :func:`sigint_remembered`) still counts.
    """
    # optimised here, so that the keys the workers run are those of these graphs
    optimised = dask.optimize(*collections)
    with sigint_remembered():
        futures = client.compute(list(optimised), optimize_graph=False)
        try:
            _wait_unless_interrupted(futures, progress)
            return client.gather(futures)
        except BaseException:
            keys = {str(k) for c in optimised for k in dict(c.__dask_graph__())}
            client.cancel(futures, force=True)
            deadline = time.monotonic() + drain_timeout
            while _keys_running(client, keys) and time.monotonic() < deadline:
                time.sleep(0.1)
            raise


def write_lock(client: Any | None) -> Any:
    """A lock for writers that share one file: across the cluster's processes with a client,
    else across threads."""
    if client is None:
        return threading.Lock()
    # pickled, a distributed Lock is its name: each worker binds it to its own scheduler link
    return _import_distributed().Lock(f"xr-unmixsr-write-{uuid.uuid4().hex}")
