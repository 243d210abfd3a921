"""Shard jobs: read an input shard, run a model over its samples in batches, write the result shard atomically.

A *shard worker* is any callable ``worker(samples) -> (results, failures)`` with a ``batch_size`` attribute: it
turns a batch of raw samples (``primedepth.data.shards.read_shard`` dicts) into result samples for the result shard
(same ``__key__``) and messages for the samples it could not process. The same ``run_job`` runs inside this
process (``run_local``) and inside the model actors of the Ray engine, so both engines write identical shards.

Resume: a result shard that exists is complete (it is written under a temporary name first), so it is skipped;
a shard interrupted mid-way has no result and is redone from its start.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..data.common import DataError
from ..data.shards import expand_shards, prepare_output, read_shard, result_url, shard_exists, write_shard


@dataclass(frozen=True)
class ShardJob:
    source: str  # input shard URL
    target: str  # result shard URL


@dataclass
class ShardResult:
    source: str
    target: str
    written: int = 0
    failures: list[str] = field(default_factory=list)
    complete: bool = True  # False: the shard itself could not be read; no result shard was written


def plan_jobs(
    specs: str | list[str], out_root: str, overwrite: bool = False, rank: int = 0, world: int = 1
) -> tuple[list[ShardJob], int]:
    """Jobs for the input shards whose result shard is missing (all with ``overwrite``), and how many were
    skipped as finished. Result shards keep their input's file name, so two inputs with one name are an error.
    ``rank``/``world``: static sharding over processes (every ``world``-th shard of the full list from ``rank``,
    chosen before finished shards are dropped, so processes planning at different moments never overlap)."""
    urls = expand_shards(specs)
    names: dict[str, str] = {}
    for url in urls:
        name = posixpath.basename(url)
        if name in names:
            raise DataError(f"{url}: its result would overwrite that of {names[name]} (same shard name)")
        names[name] = url
    prepare_output(out_root)
    jobs = [ShardJob(url, result_url(out_root, url)) for url in urls[rank::world]]
    todo = [job for job in jobs if overwrite or not shard_exists(job.target)]
    return todo, len(jobs) - len(todo)


def _batches(samples: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_job(job: ShardJob, worker: Callable) -> ShardResult:
    """Process one shard; the result shard appears only when every sample has been handled."""
    result = ShardResult(job.source, job.target)
    try:
        with write_shard(job.target) as tar:
            for batch in _batches(read_shard(job.source), worker.batch_size):
                outputs, failures = worker(batch)
                for sample in outputs:
                    tar.write(sample)
                result.written += len(outputs)
                result.failures += failures
    except DataError as err:
        result.complete, result.failures = False, [str(err)]
    return result


def run_local(
    jobs: list[ShardJob], make_worker: Callable[[], Callable], on_result: Callable[[ShardResult], None] | None = None
) -> list[ShardResult]:
    """Run ``jobs`` one after another in this process, with one worker (model) for all of them."""
    worker = make_worker() if jobs else None
    results = []
    for job in jobs:
        results.append(run_job(job, worker))
        if on_result is not None:
            on_result(results[-1])
    return results
