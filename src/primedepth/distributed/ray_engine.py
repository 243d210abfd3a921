"""``--engine ray``: shard jobs as a Ray Data pipeline (``pip install "primedepth[ray]"``).

The job list becomes a Ray dataset with one block per shard; ``map_batches`` sends each job to a pool of model
actors (one per GPU, or one per CPU worker), each of which loads the model once and runs ``run_job`` on the shards
it is given: reading the shard, streaming its samples through the model in batches and writing the result shard
atomically. Ray Data schedules the actors over the cluster and restarts an actor (and retries its job) if its
process dies. The same command runs on a laptop (a local Ray instance is started) or a cluster (``ray start`` on
every node, then ``--ray-address auto`` or ``RAY_ADDRESS``), see docs/scale.md.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

import ray
import ray.data

from ..utils.threads import apply_thread_setting
from .shard_jobs import ShardJob, ShardResult, run_job


class ShardActor:
    """A Ray Data actor: one model, many shards."""

    def __init__(self, make_worker: Callable[[], Callable]):
        apply_thread_setting()  # --threads / $PRIMEDEPTH_THREADS of the command that started the run
        self.worker = make_worker()

    def __call__(self, batch: dict) -> dict:
        results = [run_job(ShardJob(str(s), str(t)), self.worker) for s, t in zip(batch["source"], batch["target"])]
        return {
            "source": [r.source for r in results],
            "target": [r.target for r in results],
            "written": [r.written for r in results],
            "complete": [r.complete for r in results],
            "failures": [json.dumps(r.failures) for r in results],
        }


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address`` (``"auto"``, ``ray://host:10001``; default ``$RAY_ADDRESS``) or start a
    local instance (with ``num_cpus`` CPUs) when none is given; an initialised Ray session is reused."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {} if address else {"num_cpus": num_cpus}
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)


def run_ray(
    jobs: list[ShardJob],
    make_worker: Callable[[], Callable],
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float = 1.0,
    address: str | None = None,
    on_result: Callable[[ShardResult], None] | None = None,
) -> list[ShardResult]:
    """Run ``jobs`` on a pool of ``workers`` model actors (default: one per GPU of the cluster, else one per CPU
    divided by ``cpus_per_worker``) and return their results as shards finish."""
    connect(address)
    resources = ray.cluster_resources()
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
    if workers is None:
        workers = (
            int(resources["GPU"] // gpus_per_worker)
            if gpus_per_worker
            else int(resources.get("CPU", 1) // cpus_per_worker)
        )
    workers = max(1, min(int(workers), len(jobs)))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our per-shard lines report progress
    rows = [{"source": job.source, "target": job.target} for job in jobs]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        ShardActor,
        fn_constructor_kwargs={"make_worker": make_worker},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker or None,
    )
    results = []
    for row in dataset.iter_rows():
        results.append(
            ShardResult(
                row["source"], row["target"], int(row["written"]), json.loads(row["failures"]), bool(row["complete"])
            )
        )
        if on_result is not None:
            on_result(results[-1])
    return results
