"""Running on a dask.distributed cluster: a local one started for the run, or an existing one.

Everything dask computes while a :class:`distributed.Client` is active runs on its cluster, so the
Python API and the ``cube.unmixsr`` accessor need nothing more than ``with Client(...):``.
:func:`client_for` is what the CLI's ``--workers`` and ``--scheduler`` options use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
    # wait on it; the working client is made the scheduler for this context only
    if workers is not None:
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
            ) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
            dask.config.set(scheduler=client),
        ):
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DistributedError(
            f"cannot connect to the dask scheduler at {scheduler!r}: {exc}; "
            "check the address (e.g. tcp://host:8786) and that the scheduler is running"
        ) from exc
    with client, dask.config.set(scheduler=client):
        yield client
