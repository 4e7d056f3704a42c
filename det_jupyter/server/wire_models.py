"""The REST API's JSON shapes, as ``TypedDict`` s: the one definition of the wire format.

``labextension/src/wire.ts`` is generated from these classes (their types and the ``Attributes:``
of their docstrings): after changing one, run ``python -m det_jupyter.server.wire_types``;
``tests/server_tests/test_wire_format.py`` fails until then. Only the ``serialize_*`` functions of
:mod:`det_jupyter.server.serializers` build them.

Example:
    >>> sorted(ActionModel.__annotations__)
    ['action', 'experiment_id', 'request_id', 'state']
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from det_jupyter.states import ControlAction, ExperimentState, TrialState

__all__ = [
    "ActionModel",
    "CheckpointModel",
    "ClusterModel",
    "ExperimentDetailModel",
    "ExperimentListModel",
    "ExperimentSummaryModel",
    "GpuModel",
    "LogLineModel",
    "LogPageModel",
    "MetricSeriesModel",
    "StateColorModel",
    "TrialDetailModel",
    "TrialListModel",
    "TrialSummaryModel",
    "WorkerModel",
]


class ExperimentSummaryModel(TypedDict):
    """One row of the experiment list.

    Attributes:
        id: Experiment id in the store.
        name: The config's ``name``.
        description: The config's ``description``.
        labels: The config's ``labels``.
        state: Where the experiment is in its lifecycle.
        progress: Work done in [0, 1]: trials COMPLETED or STOPPED by the searcher count whole, others
            by the length they trained (``searcher_time / max_time``), trials not created yet as 0, out
            of ``planned_trials``. 1 only for a COMPLETED experiment; a killed one keeps what it did.
        searcher_progress: The searcher's own progress in [0, 1] (1 once the experiment ended).
        planned_trials: Trials the searcher plans (``max_trials``, the grid's size, 1 for single), or
            ``null`` when unknown; never fewer than the trials created.
        max_time: Length each trial trains, in ``time_metric`` units (``null``: the trial's code decides).
        time_metric: The unit of ``max_time`` and of trials' ``searcher_time`` (``batches``, ``epochs``, ...).
        best_trial_id: The trial with the best searcher metric (ties: the older), ``null`` before any.
        duration: Seconds from creation to the end, or to now while it runs.
        eta: Estimated seconds left while ACTIVE (elapsed time scaled by the work left), else ``null``.
        searcher: Searcher name (``single``, ``grid``, ``random``, ``adaptive_asha``, ...).
        metric: The searcher metric, e.g. ``val_loss``.
        smaller_is_better: Whether a smaller searcher metric is better.
        num_trials: All trials of the experiment.
        trial_counts: Trials per trial state (states without trials are left out).
        best_metric: Best searcher-metric value over all trials, ``null`` before any validation.
        sparkline: Trials' best metric values in creation order, downsampled (for the sparkline).
        created_at: Creation time, seconds since the epoch.
        ended_at: End time, seconds since the epoch, once terminal.
        dashboard_link: The Dask dashboard of the cluster running it.
        error: Why it is ERROR, if it is.
    """

    id: int
    name: str
    description: str
    labels: list[str]
    state: Annotated[str, ExperimentState]
    progress: float
    searcher_progress: float
    planned_trials: int | None
    max_time: float | None
    time_metric: str | None
    best_trial_id: int | None
    duration: float | None
    eta: float | None
    searcher: str
    metric: str | None
    smaller_is_better: bool
    num_trials: int
    trial_counts: dict[str, int]
    best_metric: float | None
    sparkline: list[float]
    created_at: float
    ended_at: float | None
    dashboard_link: str | None
    error: str | None


class ExperimentListModel(TypedDict):
    """A page of experiments, newest first.

    Attributes:
        experiments: The page.
        total: Experiments in the store.
        limit: Page size asked for.
        offset: Offset asked for.
    """

    experiments: list[ExperimentSummaryModel]
    total: int
    limit: int
    offset: int


class TrialSummaryModel(TypedDict):
    """One row of a trial table.

    Attributes:
        id: Trial id.
        experiment_id: Its experiment.
        request_id: The searcher's request number.
        hparams: Hyperparameters of the trial.
        state: Where the trial is in its lifecycle.
        restarts: Failures restarted so far.
        steps_completed: Steps (batches/epochs/records) trained.
        searcher_time: Length trained as the searcher counts it (its ``time_metric``, else steps).
        progress: ``searcher_time / max_time`` in [0, 1] (1 once COMPLETED or STOPPED), ``null`` when
            the experiment sets no ``max_time``.
        is_best: Whether it is its experiment's best trial (``best_trial_id``).
        best_validation: Best searcher-metric value.
        latest_validation: Latest searcher-metric value.
        worker: Worker address running it.
        created_at: Creation time, seconds since the epoch.
        started_at: Start of the first run.
        ended_at: End time once terminal.
    """

    id: int
    experiment_id: int
    request_id: int
    hparams: dict[str, Any]
    state: Annotated[str, TrialState]
    restarts: int
    steps_completed: int
    searcher_time: float
    progress: float | None
    is_best: bool
    best_validation: float | None
    latest_validation: float | None
    worker: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None


class TrialListModel(TypedDict):
    """A page of an experiment's trials, in creation order.

    Attributes:
        trials: The page.
        total: All trials of the experiment.
        limit: Page size asked for.
        offset: Offset asked for.
    """

    trials: list[TrialSummaryModel]
    total: int
    limit: int
    offset: int


class ExperimentDetailModel(ExperimentSummaryModel):
    """An experiment with its config and the first page of its trials.

    Attributes:
        config: The experiment config as given (JSON-safe).
        entrypoint_name: Name of the training function.
        seed: The experiment's random seed.
        owner: The controller running it (``host:pid:nonce``), while one does.
        heartbeat: The controller's last sign of life, seconds since the epoch.
        cluster_address: Scheduler address of the Dask cluster running it.
        trials: The first page of its trials.
    """

    config: dict[str, Any]
    entrypoint_name: str
    seed: int
    owner: str | None
    heartbeat: float | None
    cluster_address: str | None
    trials: TrialListModel


class MetricSeriesModel(TypedDict):
    """One metric of one kind (``training`` / ``validation``) of a trial, possibly downsampled.

    Attributes:
        kind: ``training`` or ``validation``.
        name: Metric name, e.g. ``loss``.
        steps: Steps of the points kept, ascending.
        values: Values at those steps (``null`` for NaN or infinite ones).
        total_points: Points before downsampling.
    """

    kind: str
    name: str
    steps: list[int]
    values: list[float | None]
    total_points: int


class CheckpointModel(TypedDict):
    """A committed checkpoint.

    Attributes:
        uuid: Checkpoint UUID (its directory in checkpoint storage).
        trial_id: The trial that saved it.
        experiment_id: Its experiment.
        run_id: The run of the trial that saved it.
        steps: Steps trained when it was saved.
        state: ``COMPLETED``, or ``DELETED`` by the garbage-collection policy.
        metric: The searcher metric at that step, if validated.
        metadata: Metadata the trial saved with it.
        resources: Files in it and their sizes in bytes.
        created_at: When it was committed, seconds since the epoch.
    """

    uuid: str
    trial_id: int
    experiment_id: int
    run_id: int
    steps: int
    state: str
    metric: float | None
    metadata: dict[str, Any]
    resources: dict[str, int]
    created_at: float


class LogLineModel(TypedDict):
    """One line of a trial's output.

    Attributes:
        run_id: The run of the trial that printed it.
        ts: When, seconds since the epoch.
        line: The text, without its newline.
    """

    run_id: int
    ts: float
    line: str


class TrialDetailModel(TrialSummaryModel):
    """A trial with its metric series, checkpoints and the tail of its log.

    Attributes:
        run_id: The current run (restarts and resumes start new ones).
        error: Why it is ERROR, if it is.
        metrics: One series per kind and metric name.
        checkpoints: Its committed checkpoints.
        logs: The tail of its output.
        logs_cursor: Pass it as ``after`` to ``trials/<id>/logs`` for the lines printed since.
    """

    run_id: int
    error: str | None
    metrics: list[MetricSeriesModel]
    checkpoints: list[CheckpointModel]
    logs: list[LogLineModel]
    logs_cursor: int


class LogPageModel(TypedDict):
    """New lines of a trial's log since a cursor (``GET trials/<id>/logs?after=&tail=``), for live tails.

    Attributes:
        trial_id: The trial.
        state: The trial's state now (a tail can stop polling once it is terminal and drained).
        lines: The lines after ``after``, oldest first (at most ``tail``: the newest ones).
        cursor: Pass it as ``after`` next time; equals ``after`` when nothing is new.
        skipped: Lines after ``after`` left out to keep within ``tail``.
    """

    trial_id: int
    state: Annotated[str, TrialState]
    lines: list[LogLineModel]
    cursor: int
    skipped: int


class GpuModel(TypedDict):
    """One GPU as NVML sees it.

    Attributes:
        index: NVML index.
        uuid: GPU UUID.
        name: Model name.
        memory_total_mb: Total memory, MiB.
        memory_used_mb: Used memory, MiB.
        utilization_percent: Utilisation in percent, ``null`` when NVML cannot tell.
    """

    index: int
    uuid: str
    name: str
    memory_total_mb: float
    memory_used_mb: float
    utilization_percent: float | None


class WorkerModel(TypedDict):
    """One Dask worker of the attached cluster.

    Attributes:
        address: Worker address.
        name: Worker name.
        host: Host name.
        nthreads: Threads.
        resources: Dask resources (``GPU`` / ``CPU`` slots).
        gpus: Its pinned GPUs.
    """

    address: str
    name: str
    host: str
    nthreads: int
    resources: dict[str, float]
    gpus: list[GpuModel]


class ClusterModel(TypedDict):
    """The cluster the server describes, or the server machine's GPUs when none is attached.

    Attributes:
        attached: Whether a Dask cluster is described (else: the server machine's GPUs).
        source: Where it was found: ``configured`` (``c.ExperimentService.scheduler_address``),
            ``experiment`` (a running experiment's external cluster), ``master`` (the home's
            det-jupyter master and its embedded cluster) or ``none``.
        message: What is shown, or why no cluster is.
        scheduler: Scheduler address.
        dashboard_link: Dask dashboard URL as the cluster names it (``http://127.0.0.1:8787/status``).
        dashboard_proxy_path: The dashboard through jupyter-server-proxy, an absolute path on the
            Jupyter server (``<base_url>proxy/8787/status``), when that proxy is installed; else ``null``.
        master_pid: The det-jupyter master's process id when ``source`` is ``master``.
        experiments: Ids of the experiments running on it (the master's, or the running ones).
        workers: Dask workers.
        slots: Slots per resource (``GPU``, ``CPU``).
        gpus: GPUs (of the workers, or of the server when no cluster is attached).
    """

    attached: bool
    source: str
    message: str
    scheduler: str | None
    dashboard_link: str | None
    dashboard_proxy_path: str | None
    master_pid: int | None
    experiments: list[int]
    workers: list[WorkerModel]
    slots: dict[str, float]
    gpus: list[GpuModel]


class StateColorModel(TypedDict):
    """How a state is drawn: a JupyterLab theme variable and its light and dark values.

    Attributes:
        css: The JupyterLab CSS variable (follows the theme).
        light: Its hex value in JupyterLab Light.
        dark: Its hex value in JupyterLab Dark.
    """

    css: str
    light: str
    dark: str


class ActionModel(TypedDict):
    """The answer to a control action: the request written into the store.

    Attributes:
        experiment_id: The experiment.
        action: The action requested.
        request_id: The request row id.
        state: The experiment's state when the request was written.
    """

    experiment_id: int
    action: Annotated[str, ControlAction]
    request_id: int
    state: Annotated[str, ExperimentState]
