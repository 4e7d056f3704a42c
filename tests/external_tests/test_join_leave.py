"""Experiments on a real external cluster (``dask scheduler`` + ``dask worker`` processes on loopback),
run by the det-jupyter master (by address, or a cluster object's address) and in-process (a ``Client``),
with a worker joining and one leaving mid-experiment: no trial is lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from external_tests.procs import DaskProcesses

pytestmark = pytest.mark.slow


def paced_trial(ctx: Any) -> None:
    """Checkpoints every 5 steps; says where each run starts (a resumed run starts past 0)."""
    start = 0
    with ctx.checkpoint.restore() as path:
        if path is not None:
            start = int((path / "step").read_text())
    print(f"run {ctx.run_id} starts at step {start}")
    for step in range(start + 1, ctx.searcher.max_time + 1):
        time.sleep(0.1)
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        if step % 5 == 0:
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))
    ctx.report_validation_metrics(ctx.searcher.max_time, {"val_loss": ctx.hparams["x"] ** 2})


def _config(trials: int, length: int) -> dict[str, Any]:
    return {
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": trials, "max_time": length,
                     "time_metric": "batches"},
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}},
        "max_restarts": 0,  # a worker leaving must not cost the trial a restart it could fail on
    }  # fmt: skip


def _starts(trial: Any) -> list[int]:
    return [int(line.rsplit(" ", 1)[1]) for line in trial.logs() if " starts at step " in line]


def test_a_worker_joins_and_one_leaves_mid_experiment_and_no_trial_is_lost(
    det_home: Path, dask_procs: DaskProcesses
) -> None:
    for name in ("w1", "w2"):
        dask_procs.start_worker(name, "--nthreads", "1", "--resources", "CPU=1")
    exp = det_jupyter.create_experiment(
        _config(8, 60), paced_trial, cluster=dask_procs.address
    )  # master mode
    store = exp.store
    names = dask_procs.worker_names()

    def running_on(worker: str) -> list[Any]:
        return [
            t for t in exp.trials()
            if t.state == TrialState.ACTIVE and store.get_trial(t.id).worker == names[worker]
        ]  # fmt: skip

    dask_procs.wait_for(lambda: running_on("w1") and running_on("w2"), 120, "trials running on w1 and w2")
    dask_procs.start_worker("w3", "--nthreads", "1", "--resources", "CPU=1")  # joins
    names = dask_procs.worker_names()
    ran_on_w3 = lambda: [t for t in exp.trials() if store.get_trial(t.id).worker == names["w3"]]  # noqa: E731
    dask_procs.wait_for(ran_on_w3, 120, "a trial on the worker that joined (Dask moves queued work to it)")

    def victim() -> Any:  # a trial on w1 with a checkpoint and well before its end
        for t in running_on("w1"):
            if t.checkpoints() and max(c.steps for c in t.checkpoints()) <= 40:
                return t
        return None

    leaving = dask_procs.wait_for(victim, 120, "a checkpointed trial on w1")
    left_address = names["w1"]
    dask_procs.stop("w1")  # leaves (SIGTERM, as a scheduler of jobs ends a worker)

    assert exp.wait(timeout=300) == ExperimentState.COMPLETED, exp.error
    trials = exp.trials()
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETED for t in trials)
    lost = next(t for t in trials if t.id == leaving.id)
    starts = _starts(lost)
    assert starts[0] == 0 and len(starts) >= 2 and starts[-1] >= 5, starts  # resumed from its checkpoint
    assert store.get_trial(lost.id).worker != left_address
    workers_used = {store.get_trial(t.id).worker for t in trials}
    assert names["w3"] in workers_used


class _JobqueueLike:
    """What dask-jobqueue / dask-kubernetes cluster objects offer: ``scheduler_address``."""

    def __init__(self, address: str) -> None:
        self.scheduler_address = address


class _GatewayLike:
    """What dask-gateway's cluster offers: no tcp:// address, only ``get_client()``."""

    def __init__(self, address: str) -> None:
        self.scheduler_address = "gateway://proxy:8786/abc"
        self._address = address
        self.clients: list[Any] = []

    def get_client(self) -> Any:
        from distributed import Client

        client = Client(self._address, set_as_default=False)
        self.clients.append(client)
        return client


def quick_trial(ctx: Any) -> None:
    import os

    ctx.report_validation_metrics(
        1, {"val_loss": ctx.hparams["x"] ** 2, "env": os.environ.get("DEMO_VAR", "")}
    )


def test_cluster_objects_client_and_env_vars_on_an_external_cluster(
    det_home: Path, dask_procs: DaskProcesses
) -> None:
    dask_procs.start_worker("a", "--nthreads", "1", "--resources", "CPU=1")
    dask_procs.start_worker("b", "--nthreads", "2")  # declares no resources
    cfg = {**_config(2, 1), "environment": {"environment_variables": ["DEMO_VAR=from-config"]}}

    by_object = det_jupyter.create_experiment(cfg, quick_trial, cluster=_JobqueueLike(dask_procs.address))
    assert by_object.wait(timeout=120) == ExperimentState.COMPLETED, by_object.error
    assert by_object.store.get_experiment(by_object.id).cluster_address == dask_procs.address
    assert by_object._controller is None  # the master ran it (it joined by the object's address)

    gateway = _GatewayLike(dask_procs.address)
    try:
        inproc = det_jupyter.create_experiment(cfg, quick_trial, cluster=gateway)
        assert inproc._controller is not None  # in-process: only this process has the client
        assert inproc.wait(timeout=120) == ExperimentState.COMPLETED, inproc.error

        direct = det_jupyter.create_experiment(cfg, quick_trial, cluster=dask_procs.client)
        assert direct.wait(timeout=120) == ExperimentState.COMPLETED, direct.error
    finally:
        for client in gateway.clients:
            client.close()
    for exp in (by_object, inproc, direct):
        rows = exp.metrics("validation")
        assert list(rows["env"]) == ["from-config"] * 2  # environment_variables applied on the workers
