"""ExperimentWidget and its WidgetModel: figure data equals the store, controls write requests, refresh stops.

Fast tests write rows into a fresh store by hand (no controller runs, so control requests stay
pending and can be read back); slow tests follow real experiments on the session's Dask cluster.
"""

from __future__ import annotations

import html as html_lib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import det_jupyter
from det_jupyter.config import load_config
from det_jupyter.experiment import Experiment
from det_jupyter.notebook.widget import figures as figures_mod
from det_jupyter.notebook.widget.html import load_code, trial_detail_html
from det_jupyter.notebook.widget.model import WidgetModel, downsample, smooth
from det_jupyter.notebook.widget.widget import ExperimentWidget
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.store import CheckpointRow, LogRow, MetricRow, Store

CONFIG = {
    "name": "widget-test",
    "searcher": {"name": "random", "metric": "val_loss", "max_trials": 3, "max_time": 10, "time_metric": "batches"},
    "hyperparameters": {
        "lr": {"type": "double", "minval": 0, "maxval": 1},
        "act": {"type": "categorical", "vals": ["relu", "tanh"]},
    },
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "det.db")


@pytest.fixture
def widgets() -> Iterator[list[ExperimentWidget]]:
    """Widgets made by a test; their refresh threads are stopped at the end."""
    made: list[ExperimentWidget] = []
    yield made
    for w in made:
        w.close()


def _experiment(store: Store, config: dict[str, Any] = CONFIG) -> Experiment:
    exp_id = store.create_experiment(
        name=config["name"], config=load_config(config).to_dict(), entrypoint=b"", seed=1
    )
    return Experiment(exp_id, store)


def _trials(store: Store, exp: Experiment, n: int = 3) -> list[int]:
    ids = [
        store.create_trial(exp.id, i, {"lr": 0.1 * (i + 1), "act": ["relu", "tanh"][i % 2]}) for i in range(n)
    ]
    for t in ids:
        store.update_trial(t, state=TrialState.ACTIVE)
    return ids


def _report(
    store: Store, trial_id: int, kind: str, steps: range, fn: Callable[[int], float], run_id: int = 0
) -> None:
    name = "val_loss" if kind == "validation" else "loss"
    store.add_metrics(
        [MetricRow(trial_id, run_id, kind, s, {name: fn(s), "other": -1.0}, time.time()) for s in steps]
    )


def _expected(
    store: Store, exp: Experiment, kind: str, metric: str
) -> dict[int, tuple[list[int], list[float]]]:
    """Per trial, steps ascending and the newest value reported at each step: straight from the store."""
    points: dict[int, dict[int, float]] = {}
    for row in store.metrics(experiment_id=exp.id, kind=kind):
        points.setdefault(row.trial_id, {})[row.steps] = row.metrics[metric]
    return {t: (sorted(p), [p[s] for s in sorted(p)]) for t, p in sorted(points.items())}


def _figure_series(fig: Any) -> dict[int, tuple[list[int], list[float]]]:
    return {
        int(tr.name.split()[1]): (list(tr.x), list(tr.y)) for tr in fig.data if tr.name.startswith("trial ")
    }


# --- the model ------------------------------------------------------------------------------------


def test_model_reads_incrementally_and_matches_the_store(store: Store) -> None:
    exp = _experiment(store)
    t1, t2, _t3 = _trials(store, exp)
    _report(store, t1, "training", range(1, 9), lambda s: 1 / s)
    _report(store, t1, "validation", range(4, 9, 4), lambda s: 2 / s)
    model = WidgetModel(store, exp.id)
    changes = model.refresh()
    assert changes.new_reports == 10 and changes.series == {"training": {t1}, "validation": {t1}}
    assert model.training_metric == "loss"  # preferred over the other numeric metric
    # a restarted run re-reports steps 5..8 with new values, and another trial starts reporting
    _report(store, t1, "training", range(5, 11), lambda s: 10 / s, run_id=1)
    _report(store, t2, "validation", range(4, 5), lambda s: 0.25)
    changes = model.refresh()
    assert changes.new_reports == 7
    assert changes.series == {"training": {t1}, "validation": {t2}}
    assert model.series("training") == _expected(store, exp, "training", "loss")
    assert model.series("validation") == _expected(store, exp, "validation", "val_loss")
    assert model.trial_series("training", t1) == (
        list(range(1, 11)),
        [1, 1 / 2, 1 / 3, 1 / 4, 2, 10 / 6, 10 / 7, 10 / 8, 10 / 9, 1],
    )
    assert not model.refresh()  # nothing new: nothing to redraw


def _grow(store: Store, exp: Experiment, trials: list[int]) -> Iterator[None]:
    """Reports arriving in batches as a live search writes them: in order, a step reported again, a
    restarted run superseding steps, a report out of order, a metric that appears later; yields after each."""
    t1, t2 = trials
    _report(store, t1, "training", range(1, 30), lambda s: 1 / s)
    yield
    _report(store, t1, "training", range(30, 60), lambda s: 1 / s)
    _report(store, t2, "training", range(1, 20), lambda s: 2 / s)
    _report(store, t1, "validation", range(10, 60, 10), lambda s: 3 / s)
    yield
    _report(store, t1, "training", range(59, 61), lambda s: 5 / s)  # step 59 again, newer value
    yield
    store.supersede_metrics(t2, run_id=1, after_steps=10)  # t2 restarts from its checkpoint at step 10
    store.update_trial(t2, run_id=1, restarts=1)
    _report(store, t2, "training", range(11, 15), lambda s: 7 / s, run_id=1)
    yield
    _report(store, t2, "training", range(3, 4), lambda s: 9.0, run_id=1)  # out of order
    store.add_metrics([MetricRow(t1, 0, "training", 61, {"loss": 0.5, "acc": 0.9}, time.time())])
    yield


@pytest.mark.parametrize("batch", [None, 7])
def test_series_extended_incrementally_equal_a_full_read(
    store: Store, batch: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The columns grow by the reports at their end; whatever arrives, they equal a fresh read (also
    when a refresh reads its reports in several store queries)."""
    if batch is not None:
        from det_jupyter.notebook.widget import model as model_mod

        monkeypatch.setattr(model_mod, "READ_BATCH", batch)
    exp = _experiment(store)
    trials = _trials(store, exp, 2)
    model = WidgetModel(store, exp.id)
    views = [("training", None, "steps"), ("training", None, "time"), ("validation", None, "steps"),
             ("training", "other", "steps"), ("training", "acc", "steps")]  # fmt: skip
    for _ in _grow(store, exp, trials):
        model.refresh()
        for kind, metric, x in views:  # asked after every batch, so each is extended, not rebuilt
            for t in trials:
                model.trial_series(kind, t, metric=metric, x=x)
    fresh = WidgetModel(store, exp.id)
    fresh.refresh()
    for kind, metric, x in views:
        for t in trials:
            assert model.trial_series(kind, t, metric=metric, x=x) == fresh.trial_series(
                kind, t, metric=metric, x=x
            ), (kind, metric, x, t)
    assert model.series("training") == _expected(store, exp, "training", "loss")
    assert model.trials == fresh.trials == store.list_trials(exp.id)
    assert model.top_trials(1) == fresh.top_trials(1) and model.progress() == fresh.progress()


def test_the_model_holds_a_bounded_number_of_bytes_per_report(store: Store) -> None:
    """Reports are kept columnar (typed arrays), not as a dict per report: 100,000 reports of two
    metrics, read and each series built once (as the figures do), hold < 100 bytes a report (a dict
    per report held ~400). Counted with tracemalloc: bytes the model keeps, not a time."""
    import gc
    import tracemalloc

    exp = _experiment(store)
    trials = _trials(store, exp, 10)
    for t in trials:
        _report(store, t, "training", range(1, 9_001), lambda s: 1 / s)
        _report(store, t, "validation", range(1, 1_001), lambda s: 2 / s)
    gc.collect()
    tracemalloc.start()
    try:
        model = WidgetModel(store, exp.id)  # (10 trial rows and the config besides: a few KiB)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        while True:
            model.refresh()
            if not model.loading:
                break
        for kind in ("training", "validation"):
            for t in trials:
                model.trial_series(kind, t)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert model.reports_held() == 100_000
    assert held < 100 * 100_000, f"{held / 100_000:.0f} bytes per report"
    assert model.nbytes() <= held  # what it says it holds is there (spare capacity aside)


def test_columns_keep_nan_values_apart_from_missing_metrics(store: Store) -> None:
    """A reported NaN is a point; a report without the metric is none; bools are not metrics."""
    exp = _experiment(store)
    (t1,) = _trials(store, exp, 1)
    nan = float("nan")
    rows = [(1, {"loss": 1.0}), (2, {"loss": nan, "acc": 0.5}), (3, {"acc": 0.6, "flag": True}),
            (5, {"loss": 0.5}), (4, {"loss": 0.7, "acc": 0.7})]  # fmt: skip
    store.add_metrics([MetricRow(t1, 0, "training", s, m, time.time()) for s, m in rows])
    model = WidgetModel(store, exp.id)
    model.refresh()
    xs, ys = model.trial_series("training", t1)
    assert xs == [1, 2, 4, 5] and ys[0] == 1.0 and ys[1] != ys[1] and ys[2:] == [0.7, 0.5]
    assert model.trial_series("training", t1, metric="acc") == ([2, 3, 4], [0.5, 0.6, 0.7])
    assert model.metric_names("training") == ["loss", "acc"]
    assert model.last_point("training", t1) == (5, 0.5)
    store.add_metrics([MetricRow(t1, 0, "training", 5, {"acc": 0.8}, time.time())])  # step 5 again, no loss
    changes = model.refresh()
    assert changes.series["training"] == {t1}
    assert model.last_point("training", t1) == (4, 0.7)
    assert model.trial_series("training", t1, metric="acc") == ([2, 3, 4, 5], [0.5, 0.6, 0.7, 0.8])


def test_figures_updated_incrementally_equal_a_full_rebuild(
    store: Store, widgets: list[ExperimentWidget], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A widget that drew every batch as it came shows the same figures as one built once at the end."""
    monkeypatch.setattr(figures_mod, "OPS_PER_SECOND", 1000)  # no message budget to wait for here
    monkeypatch.setattr(figures_mod, "MAX_POINTS", 20)
    exp = _experiment(store)
    trials = _trials(store, exp, 2)
    live = ExperimentWidget(exp)
    widgets.append(live)
    for step, _ in enumerate(_grow(store, exp, trials)):
        store.update_trial(trials[step % 2], best_validation=1.0 / (step + 1))  # the best trial changes
        live.refresh()
    rebuilt = ExperimentWidget(exp)
    widgets.append(rebuilt)

    def drawn(w: ExperimentWidget, kind: str) -> list[tuple[Any, ...]]:
        fig = w.figures[kind].figure
        return sorted(
            (tr.name, list(tr.x), list(tr.y), tr.line.width, tr.opacity, tr.type)
            for tr in fig.data[1:]
            if tr.name
        )

    for kind in ("training", "validation"):
        assert drawn(live, kind) == drawn(rebuilt, kind)
        assert drawn(live, kind)  # something was drawn
    live_rows, rebuilt_rows = live.table.rows, rebuilt.table.rows
    assert live_rows == rebuilt_rows


def test_a_big_experiment_is_read_in_chunks_and_drawn_once_read(
    store: Store, widgets: list[ExperimentWidget], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Displaying an experiment of many reports reads one chunk; the refreshes read the rest, then draw."""
    from det_jupyter.notebook.widget import model as model_mod

    monkeypatch.setattr(model_mod, "READ_CHUNK", 25)
    monkeypatch.setattr(figures_mod, "OPS_PER_SECOND", 1000)
    exp = _experiment(store)
    t1, t2 = _trials(store, exp, 2)
    _report(store, t1, "training", range(1, 41), lambda s: 1 / s)
    _report(store, t2, "training", range(1, 31), lambda s: 2 / s)
    w = ExperimentWidget(exp)
    widgets.append(w)
    assert w.model.loading and w.pending and w.model.reports_read == 25
    assert not _figure_series(w.training_figure)  # nothing drawn while reading
    assert "reading reports: 25 so far" in w.status.value
    refreshes = 0
    while w.pending:
        w.refresh()
        refreshes += 1
    assert refreshes == 2 and w.model.reports_read == 70 and not w.status.value
    assert _figure_series(w.training_figure) == _expected(store, exp, "training", "loss")


def test_training_metric_falls_back_to_a_loss_like_name(store: Store) -> None:
    exp = _experiment(store)
    (t1,) = _trials(store, exp, 1)
    store.add_metrics([MetricRow(t1, 0, "training", 1, {"accuracy": 0.5, "train_loss": 0.9}, time.time())])
    model = WidgetModel(store, exp.id)
    model.refresh()
    assert model.training_metric == "train_loss"
    assert model.series("training") == {t1: ([1], [0.9])}


def test_table_sorts_and_best_trial_follows_the_searcher_direction(store: Store) -> None:
    config = {**CONFIG, "searcher": {**CONFIG["searcher"], "metric": "val_acc", "smaller_is_better": False}}
    exp = _experiment(store, config)
    t1, t2, t3 = _trials(store, exp)
    store.update_trial(t1, best_validation=0.7, steps_completed=10, restarts=1)
    store.update_trial(t2, best_validation=0.9, steps_completed=4)
    store.update_trial(t3, steps_completed=2)
    model = WidgetModel(store, exp.id)
    model.refresh()
    assert model.best_trial_id == t2
    assert [r.id for r in model.table_rows("best")] == [t2, t1, t3]  # best first, unscored last
    assert [r.id for r in model.table_rows("best", descending=True)] == [t1, t2, t3]
    assert [r.id for r in model.table_rows("steps", descending=True)] == [t1, t2, t3]
    assert [r.id for r in model.table_rows("restarts")] == [t2, t3, t1]
    assert [r.is_best for r in model.table_rows()] == [False, True, False]
    with pytest.raises(ValueError, match="sort_by='metric' is not a table column"):
        model.table_rows("metric")


# --- the widget -----------------------------------------------------------------------------------


def test_figures_show_one_trace_per_trial_equal_to_the_store(
    store: Store, widgets: list[ExperimentWidget]
) -> None:
    exp = _experiment(store)
    t1, t2, t3 = _trials(store, exp)
    for i, t in enumerate((t1, t2, t3)):
        _report(store, t, "training", range(1, 6), lambda s, i=i: i + 1 / s)
        _report(store, t, "validation", range(5, 6), lambda s, i=i: 0.5 + i)
        store.update_trial(t, best_validation=0.5 + i, steps_completed=5)
    store.update_trial(t3, state=TrialState.STOPPED)
    w = ExperimentWidget(exp)
    widgets.append(w)
    assert _figure_series(w.training_figure) == _expected(store, exp, "training", "loss")
    assert _figure_series(w.validation_figure) == _expected(store, exp, "validation", "val_loss")
    # new reports appear after the next refresh
    _report(store, t2, "training", range(6, 9), lambda s: 0.1)
    _report(store, t2, "validation", range(8, 9), lambda s: 0.1)
    store.update_trial(t2, best_validation=0.1, steps_completed=8)
    w.refresh()
    assert _figure_series(w.training_figure) == _expected(store, exp, "training", "loss")
    assert _figure_series(w.validation_figure) == _expected(store, exp, "validation", "val_loss")
    for fig in (w.training_figure, w.validation_figure):  # spare traces for later trials stay empty
        assert all(not tr.x and not tr.showlegend for tr in fig.data if not tr.name)
    # the best trial (now t2) is drawn thick and opaque, the others thin
    widths = {tr.name: tr.line.width for tr in w.validation_figure.data if tr.name.startswith("trial")}
    assert widths == {f"trial {t1}": 1.5, f"trial {t2}": 4.0, f"trial {t3}": 1.5}
    # the early-stopped trial is marked where it stopped
    (stop,) = [tr for tr in w.validation_figure.data if tr.name == "ASHA stop"]
    assert (list(stop.x), list(stop.y), list(stop.hovertext)) == ([5], [2.5], [f"trial {t3} stopped early"])
    assert [r["cells"][0] for r in w.table.rows] == [str(t1), f"{t2} ★", str(t3)]


def test_downsample_keeps_ends_and_every_bucket_extreme() -> None:
    xs = list(range(1, 1001))
    ys = [float((s * 37) % 101) for s in xs]
    ys[500] = 1e6  # a spike must survive
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) <= 100 and dx[0] == 1 and dx[-1] == 1000 and 1e6 in dy
    assert dx == sorted(dx) and all(ys[x - 1] == y for x, y in zip(dx, dy, strict=True))
    assert downsample(xs[:50], ys[:50], 100) == (xs[:50], ys[:50])
    with pytest.raises(ValueError, match="max_points=2"):
        downsample(xs, ys, 2)


def test_many_trials_draw_webgl_downsampled_with_the_top_k_in_full(
    store: Store, widgets: list[ExperimentWidget], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figures_mod, "TOP_K", 2)
    monkeypatch.setattr(figures_mod, "MAX_POINTS", 40)
    monkeypatch.setattr(figures_mod, "THIN_POINTS", 10)
    config = {**CONFIG, "searcher": {**CONFIG["searcher"], "max_trials": 60}}
    exp = _experiment(store, config)
    ids = _trials(store, exp, 5)
    for i, t in enumerate(ids):
        _report(store, t, "training", range(1, 101), lambda s, i=i: i + 1 / s)
        store.update_trial(t, best_validation=float(i), steps_completed=100)
    w = ExperimentWidget(exp)
    widgets.append(w)
    assert all(tr.type == "scattergl" for tr in w.training_figure.data[1:])
    series = _figure_series(w.training_figure)
    full = _expected(store, exp, "training", "loss")
    for t in ids:  # every trace is the downsampled store series, ending at the newest report
        assert series[t] == downsample(*full[t], 40 if t in ids[:2] else 10)
        assert series[t][0][-1] == 100
    styles = {
        int(tr.name.split()[1]): (tr.line.width, tr.opacity) for tr in w.training_figure.data[1:] if tr.name
    }
    assert styles[ids[0]] == (4.0, 1.0) and styles[ids[1]] == (1.5, 0.55)
    assert all(styles[t] == (1.0, 0.2) for t in ids[2:])  # outside the top k: thin and faded
    # a trial that becomes one of the best is redrawn in full and in colour
    store.update_trial(ids[4], best_validation=-1.0)
    w.refresh()
    while w.pending:
        time.sleep(0.2)
        w.refresh()
    series = _figure_series(w.training_figure)
    assert series[ids[4]] == downsample(*full[ids[4]], 40)
    assert series[ids[1]] == downsample(*full[ids[1]], 10)


def test_a_refresh_sends_one_batched_update_per_figure(store: Store, widgets: list[ExperimentWidget]) -> None:
    exp = _experiment(store)
    trials = _trials(store, exp)
    w = ExperimentWidget(exp)
    widgets.append(w)
    sent: dict[str, int] = {"training": 0, "validation": 0}
    for kind, fig in (("training", w.training_figure), ("validation", w.validation_figure)):
        send = fig._send

        def counting(*args: Any, _kind: str = kind, _send: Any = send, **kwargs: Any) -> Any:
            sent[_kind] += 1
            return _send(*args, **kwargs)

        fig._send = counting
    for t in trials:  # three new trials: they take spare traces, in one batched update: one message
        _report(store, t, "training", range(1, 50), lambda s: 1 / s)
    w.refresh()
    assert sent["training"] == 1
    step = 50
    for _ in range(figures_mod.OPS_PER_SECOND - 1):  # three changed traces: again one message
        for t in trials:
            _report(store, t, "training", range(step, step + 10), lambda s: 1 / s)
        step += 10
        w.refresh()
    assert sent["training"] == figures_mod.OPS_PER_SECOND
    assert sent["validation"] == 0  # nothing changed there, nothing sent
    for t in trials:  # one more update within the same second waits for the next refresh
        _report(store, t, "training", range(step, step + 1), lambda s: 1 / s)
    w.refresh()
    assert sent["training"] == figures_mod.OPS_PER_SECOND and w.pending
    assert _figure_series(w.training_figure)[trials[0]][0][-1] == step - 1


def test_buttons_write_control_requests(store: Store, widgets: list[ExperimentWidget]) -> None:
    exp = _experiment(store)
    w = ExperimentWidget(exp)
    widgets.append(w)
    assert not w.pause_button.disabled and w.activate_button.disabled and not w.kill_button.disabled
    w.pause_button.click()
    w.activate_button.click()
    w.kill_button.click()
    actions = [r.action for r in store.pending_requests(exp.id)]
    assert actions == [ControlAction.PAUSE, ControlAction.ACTIVATE, ControlAction.KILL]
    assert "kill requested" in w.status.value
    store.update_experiment(exp.id, state=ExperimentState.PAUSED)
    w.refresh()
    assert w.pause_button.disabled and not w.activate_button.disabled


def test_failed_trials_show_their_traceback(store: Store, widgets: list[ExperimentWidget]) -> None:
    exp = _experiment(store)
    t1, t2, _ = _trials(store, exp)
    w = ExperimentWidget(exp)
    widgets.append(w)
    assert w.errors.layout.display == "none"
    store.update_trial(t1, state=TrialState.ERROR, restarts=3, error="Traceback\nKeyError: 'label' <col>")
    store.update_trial(t2, restarts=1, error="Traceback\nValueError: once")
    w.refresh()
    assert w.errors.layout.display is None
    assert f"trial {t1} failed (ERROR after 3 restart(s))" in w.errors.value
    assert "KeyError: &#x27;label&#x27; &lt;col&gt;" in w.errors.value  # escaped, not injected
    assert f"trial {t2} failed and was restarted" in w.errors.value


def test_refresh_thread_stops_after_one_final_refresh(
    store: Store, widgets: list[ExperimentWidget], wait_for: Any
) -> None:
    exp = _experiment(store)
    trials = _trials(store, exp)
    for i, t in enumerate(trials):
        _report(store, t, "validation", range(10, 11), lambda s, i=i: 0.3 + i)
        store.update_trial(t, best_validation=0.3 + i)
    w = ExperimentWidget(exp)
    widgets.append(w)
    w.start()
    assert w.refreshing  # the analysis is drawn while the search runs (two trials have a metric)...
    assert [list(d.values) for d in w.parallel_figure.data[0].dimensions][-1] == [0.3, 1.3, 2.3]
    _report(store, trials[0], "validation", range(11, 12), lambda s: 0.2)
    wait_for(lambda: _figure_series(w.validation_figure)[trials[0]][0] == [10, 11], what="the thread to draw")
    store.update_trial(trials[0], best_validation=0.2)
    for t in trials:
        store.update_trial(t, state=TrialState.COMPLETED)
    store.update_experiment(exp.id, state=ExperimentState.COMPLETED, ended_at=time.time(), progress=1.0)
    wait_for(lambda: not w.refreshing, timeout=10, what="the refresh thread to stop")
    count = w.refreshes
    assert w.pause_button.disabled and w.activate_button.disabled and w.kill_button.disabled
    assert w.progress.value == 1.0 and w.progress.bar_style == "success"
    # ... and redrawn with the final metrics once it has ended
    dims = {d.label: list(d.values) for d in w.parallel_figure.data[0].dimensions}
    assert dims["lr"] == pytest.approx([0.1, 0.2, 0.3]) and dims["val_loss"] == [0.2, 1.3, 2.3]
    assert dims["act"] == [0, 1, 0] and dims["trial"] == trials  # categorical, coded with tick labels
    assert f"Best trial <b>{trials[0]}</b>" in w.footer.value
    w.start()  # nothing to follow any more
    assert not w.refreshing and w.refreshes == count


def test_refresh_rate_is_bounded(store: Store) -> None:
    with pytest.raises(ValueError, match="at most twice a second"):
        ExperimentWidget(_experiment(store), refresh_interval=0.1)


def test_experiment_displays_its_widget_only_in_a_kernel(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = _experiment(store)
    exp._ipython_display_()  # no kernel here: the repr line
    assert capsys.readouterr().out.strip() == f"<Experiment {exp.id} 'widget-test' ACTIVE progress=0%>"


# --- live experiments on the cluster ----------------------------------------------------------------


def paced_trial(ctx: Any) -> None:
    """Reports a training loss every step and a validation every 4.

    With hparam ``gate`` (a path), it pauses after step 4 until that file exists, so a test can look
    at the widget while the experiment certainly runs.
    """
    gate = ctx.hparams.get("gate")
    for step in range(1, ctx.searcher.max_time + 1):
        while gate and step == 5 and not Path(gate).exists() and not ctx.should_stop():
            time.sleep(0.01)
        time.sleep(ctx.hparams.get("step_seconds", 0.0))
        ctx.report_training_metrics(step, {"loss": ctx.hparams["x"] / step})
        if step % 4 == 0:
            ctx.report_validation_metrics(step, {"val_loss": ctx.hparams["x"] + 1 / step})
        if ctx.should_stop():
            return


def _live_config(**searcher: Any) -> dict[str, Any]:
    return {
        "name": "widget-live",
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": 3, "max_time": 16,
                     "time_metric": "batches", "max_concurrent_trials": 2, **searcher},
        "hyperparameters": {"x": {"type": "double", "minval": 0, "maxval": 1}, "step_seconds": 0.05},
    }  # fmt: skip


@pytest.mark.slow
def test_widget_follows_a_running_experiment_to_its_end(
    det_home: Path, tmp_path: Path, dask_client: Any, widgets: list[ExperimentWidget], wait_for: Any
) -> None:
    config = _live_config(max_time=20)
    gate = tmp_path / "go"
    config["hyperparameters"]["gate"] = str(gate)
    exp = det_jupyter.create_experiment(config, paced_trial, cluster=dask_client)
    w = ExperimentWidget(exp)
    widgets.append(w)
    w.start()
    wait_for(
        lambda: sum(len(x) == 4 for x, _ in _figure_series(w.training_figure).values()) == 2,
        what="the two running trials' first 4 steps to be drawn while they wait at the gate",
    )
    assert exp.state == ExperimentState.ACTIVE
    gate.touch()
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    wait_for(lambda: not w.refreshing, timeout=10, what="the widget to stop refreshing")
    store = exp.store
    assert _figure_series(w.training_figure) == _expected(store, exp, "training", "loss")
    assert _figure_series(w.validation_figure) == _expected(store, exp, "validation", "val_loss")
    assert len(_figure_series(w.validation_figure)) == 3
    best = exp.best_trial()
    assert best is not None
    widths = {tr.name: tr.line.width for tr in w.validation_figure.data if tr.name.startswith("trial")}
    assert widths.pop(f"trial {best.id}") == 4.0 and set(widths.values()) == {1.5}
    assert w.parallel_figure is not None
    assert (
        "COMPLETED" in w.header.value and "trials: 3 of 3 created (3 completed, 0 running)" in w.header.value
    )
    assert w.progress.value == 1.0 and w.progress_label.value.startswith("100% of 3 × 20")


@pytest.mark.slow
def test_asha_stops_are_marked_where_trials_stopped(
    det_home: Path, dask_client: Any, widgets: list[ExperimentWidget], wait_for: Any
) -> None:
    config = _live_config(name="adaptive_asha", mode="aggressive", max_trials=8, max_time=16, divisor=4)
    config["reproducibility"] = {"experiment_seed": 7}  # the same 8 hparams every run
    exp = det_jupyter.create_experiment(config, paced_trial, cluster=dask_client)
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    w = ExperimentWidget(exp)
    widgets.append(w)
    stopped = {t.id for t in exp.trials() if t.state == TrialState.STOPPED}
    assert stopped, "the search stopped no trial early"
    (marker,) = [tr for tr in w.validation_figure.data if tr.name == "ASHA stop"]
    series = _figure_series(w.validation_figure)
    assert sorted(zip(marker.x, marker.y)) == sorted((series[t][0][-1], series[t][1][-1]) for t in stopped)
    # the rungs view: every trial the search stopped is "stopped" at exactly one rung, none above it
    from det_jupyter.notebook.widget.rungs import asha_rungs

    entries = [(rung.index, e) for rung in asha_rungs(w.model) or [] for e in rung.entries]
    assert {e.trial_id for _, e in entries if e.outcome == "stopped"} == stopped
    for trial_id in stopped:
        (at,) = [r for r, e in entries if e.trial_id == trial_id and e.outcome == "stopped"]
        assert all(r <= at for r, e in entries if e.trial_id == trial_id)
    assert "ASHA rungs" in w.rungs.value


@pytest.mark.slow
def test_kill_button_stops_a_running_experiment(
    det_home: Path, dask_client: Any, widgets: list[ExperimentWidget], wait_for: Any
) -> None:
    config = _live_config(max_time=2000)
    exp = det_jupyter.create_experiment(config, paced_trial, cluster=dask_client)
    w = ExperimentWidget(exp)
    widgets.append(w)
    wait_for(lambda: exp.store.metrics(experiment_id=exp.id), what="the first reports")
    w.kill_button.click()
    assert exp.wait(timeout=60) == ExperimentState.CANCELED
    w.refresh()
    assert w.kill_button.disabled and "CANCELED" in w.header.value


@pytest.mark.slow
def test_kill_button_works_while_the_kernel_runs_another_cell(
    det_home: Path, tmp_path: Path, dask_client: Any, wait_for: Any
) -> None:
    """A real ipykernel, driven as JupyterLab drives it: the click arrives while a cell sleeps."""
    import os
    import queue
    import sys

    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "DET_JUPYTER_HOME": str(det_home)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # this venv's ipykernel
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:

        def run(code: str) -> list[dict[str, Any]]:
            msg_id = kc.execute(code)
            out = []
            while True:
                msg = kc.get_iopub_msg(timeout=120)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                out.append(msg)
                assert msg["msg_type"] != "error", "\n".join(msg["content"]["traceback"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    while kc.get_shell_msg(timeout=10)["parent_header"].get("msg_id") != msg_id:
                        pass  # consume the execute_reply
                    return out

        gate = tmp_path / "never"
        run(
            "%load_ext det_jupyter\n"
            "import time\nfrom pathlib import Path\n"
            "def gated(ctx):\n"
            f"    while not Path({str(gate)!r}).exists() and not ctx.should_stop():\n"
            "        time.sleep(0.01)\n"
        )
        config = (
            "searcher: {name: random, metric: val_loss, max_trials: 2, max_time: 4, time_metric: batches}\n"
        )
        shown = run(f"%%det_experiment gated -o exp --cluster {dask_client.scheduler.address}\n{config}")
        assert any("application/vnd.jupyter.widget-view+json" in m["content"].get("data", {}) for m in shown)
        (kill,) = [
            m["content"]["comm_id"]
            for m in shown
            if m["msg_type"] == "comm_open"
            and m["content"]["data"]["state"].get("_model_name") == "ButtonModel"
            and m["content"]["data"]["state"].get("description") == "Kill"
        ]
        (exp,) = det_jupyter.list_experiments()
        wait_for(lambda: {t.state for t in exp.trials()} == {TrialState.ACTIVE}, what="both trials to run")

        busy = kc.execute("import time; time.sleep(300)")  # the kernel is now busy with this cell
        kc.shell_channel.send(
            kc.session.msg(
                "comm_msg", {"comm_id": kill, "data": {"method": "custom", "content": {"event": "click"}}}
            )
        )
        assert exp.wait(timeout=60) == ExperimentState.CANCELED
        seen: list[str] = []

        def header_says_canceled() -> bool:  # the refresh thread keeps drawing while the cell sleeps
            try:
                msg = kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                return False
            seen.append(str(msg["content"].get("data", {}).get("state", {}).get("value", "")))
            return "CANCELED" in seen[-1] and "experiment" in seen[-1]

        wait_for(header_says_canceled, timeout=30, what="the widget header to show CANCELED")
        replies = []  # ... and still is: the sleeping cell has not replied
        while kc.shell_channel.msg_ready():
            replies.append(kc.get_shell_msg(timeout=1)["parent_header"].get("msg_id"))
        assert busy not in replies
        km.interrupt_kernel()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_figures_say_to_install_anywidget_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from det_jupyter.notebook.widget.figures import figure_widget

    monkeypatch.setitem(sys.modules, "anywidget", None)  # what `import anywidget` sees when not installed
    with pytest.raises(ImportError, match="pip install anywidget"):
        figure_widget()


# --- issue 13: truthful status, pickers, table, analysis, detail, persistence, export ---------------


def test_progress_counts_work_done_not_the_end(store: Store) -> None:
    """A search killed at 32 of 300 steps is at 11 %, not 100 %; outcomes are counted apart."""
    config = {**CONFIG, "searcher": {**CONFIG["searcher"], "max_trials": 4, "max_time": 300}}
    exp = _experiment(store, config)
    t1, t2, t3 = _trials(store, exp)
    model = WidgetModel(store, exp.id)
    model.refresh()
    assert model.progress() == 0.0 and model.counts()["planned"] == 4
    store.update_trial(t1, state=TrialState.CANCELED, steps_completed=32)
    store.update_trial(t2, state=TrialState.STOPPED, steps_completed=100)
    store.update_trial(t3, state=TrialState.ERROR, steps_completed=150)
    store.update_experiment(exp.id, state=ExperimentState.CANCELED, progress=1.0, ended_at=time.time())
    model.refresh()
    assert model.progress() == pytest.approx((32 / 300 + 1.0 + 150 / 300) / 4)
    counts = model.counts()
    assert (counts["canceled"], counts["stopped"], counts["errored"], counts["completed"]) == (1, 1, 1, 0)
    assert (counts["total"], counts["planned"]) == (3, 4)
    assert model.eta() is None  # ended
    from det_jupyter.notebook.widget.html import header_html, progress_text

    assert progress_text(model) == "40% of 4 × 300 batches"  # palette.format_percent
    assert "trials: 3 of 4 created (0 completed, 1 stopped early, 1 canceled, 1 errored, 0 running)" in (
        header_html(model)
    )
    store.update_experiment(exp.id, state=ExperimentState.COMPLETED)
    model.refresh()
    assert model.progress() == 1.0


def test_eta_follows_the_pace_so_far(store: Store) -> None:
    config = {**CONFIG, "searcher": {**CONFIG["searcher"], "max_trials": 2, "max_time": 100}}
    exp = _experiment(store, config)
    t1, _t2 = _trials(store, exp, 2)
    store.update_trial(t1, steps_completed=50)
    model = WidgetModel(store, exp.id)
    model.refresh()
    start = model.experiment.created_at
    assert model.progress() == 0.25
    assert model.eta(now=start + 30) == pytest.approx(90.0)  # 30 s for a quarter: 90 s to go


def test_metric_and_x_axis_pickers_log_y_and_smoothing(
    store: Store, widgets: list[ExperimentWidget], wait_for: Any
) -> None:
    exp = _experiment(store)
    t1, t2, _ = _trials(store, exp)
    _report(store, t1, "training", range(1, 6), lambda s: 10.0 / s)
    _report(store, t2, "training", range(1, 4), lambda s: 1.0)
    w = ExperimentWidget(exp)
    widgets.append(w)
    assert list(w.training_metric_picker.options) == ["loss", "other"]
    assert w.training_figure.layout.xaxis.title.text == "batches"  # the searcher's time metric
    w.training_metric_picker.value = "other"
    wait_for(lambda: _figure_series(w.training_figure)[t1] == ([1, 2, 3, 4, 5], [-1.0] * 5), what="other")
    assert w.training_figure.layout.title.text == "training other"
    w.training_metric_picker.value = "loss"
    w.log_y.value = True
    w.smoothing.value = 0.5
    # changes held back by the message budget are drawn within a second, with no refresh thread running
    smoothed = smooth([10.0 / s for s in range(1, 6)], 0.5)
    wait_for(
        lambda: _figure_series(w.training_figure)[t1][1] == pytest.approx(smoothed), what="smoothed loss"
    )
    wait_for(lambda: w.training_figure.layout.yaxis.type == "log", what="a log y-axis")
    w.x_axis.value = "time"
    wait_for(lambda: w.training_figure.layout.xaxis.title.text == "seconds since start", what="the time axis")
    xs, _ = _figure_series(w.training_figure)[t1]
    assert len(xs) == 5 and all(isinstance(x, float) and x >= 0 for x in xs)
    # hover names the trial, its hparams, the x unit and the metric
    (trace,) = [tr for tr in w.training_figure.data if tr.name == f"trial {t1}"]
    assert f"trial {t1}" in trace.hovertemplate and "lr: 0.1" in trace.hovertemplate
    assert "act: relu" in trace.hovertemplate and "loss: %{y" in trace.hovertemplate
    assert "seconds since start: %{x}" in trace.hovertemplate


def test_table_sorts_by_header_with_a_truthful_arrow_and_picks_a_trial(
    store: Store, widgets: list[ExperimentWidget], wait_for: Any
) -> None:
    exp = _experiment(store)  # val_loss: smaller is better
    t1, t2, t3 = _trials(store, exp)
    for t, best in ((t1, 0.5), (t2, 0.2), (t3, 0.9)):
        store.update_trial(t, best_validation=best, steps_completed=10)
    store.add_logs([LogRow(t2, 0, time.time(), f"line {i}") for i in range(100)])
    w = ExperimentWidget(exp)
    widgets.append(w)
    heads = [c["label"] for c in w.table.columns]
    assert heads == ["trial ▲", "lr", "act", "state", "batches", "best val_loss", "restarts"]
    w.table.sort_by = "best"  # what a header click sets: best first
    assert [r["id"] for r in w.table.rows] == [t2, t1, t3]
    assert w.table.columns[-2]["label"] == "best val_loss ▲"  # smaller is better: values go up
    w.table.descending = True
    assert [r["id"] for r in w.table.rows] == [t3, t1, t2]
    assert w.table.columns[-2]["label"] == "best val_loss ▼"
    assert [c["cells"][0] for c in w.table.rows] == [str(t3), str(t1), f"{t2} ★"]
    # pick a trial: its line is drawn thick, the others faded; its detail opens with its log tail
    w.table.selected = t1
    widths = {tr.name: (tr.line.width, tr.opacity) for tr in w.validation_figure.data if tr.name}
    assert widths.get(f"trial {t1}", (4.0, 1.0)) == (4.0, 1.0)
    assert w.detail.layout.display is None and f'data-trial="{t1}"' in w.detail.value
    w.table.selected = t2
    assert "line 99" in w.detail.value and "line 59" not in w.detail.value  # the last 40 lines
    store.add_logs([LogRow(t2, 0, time.time(), "a new line")])
    w.refresh()  # live: the next refresh shows it
    assert "a new line" in w.detail.value
    w.table.selected = -1
    assert w.detail.layout.display == "none"


def test_larger_is_better_sorts_best_first_with_values_going_down(
    store: Store, widgets: list[ExperimentWidget]
) -> None:
    config = {**CONFIG, "searcher": {**CONFIG["searcher"], "metric": "acc", "smaller_is_better": False}}
    exp = _experiment(store, config)
    t1, t2, _t3 = _trials(store, exp)
    store.update_trial(t1, best_validation=0.5)
    store.update_trial(t2, best_validation=0.9)
    w = ExperimentWidget(exp)
    widgets.append(w)
    w.table.sort_by = "best"
    assert [r["id"] for r in w.table.rows][:2] == [t2, t1]
    assert w.table.columns[-2]["label"] == "best acc ▼"


def test_trial_detail_lists_checkpoints_with_the_code_that_loads_each(store: Store) -> None:
    exp = _experiment(store)
    (t1,) = _trials(store, exp, 1)
    store.add_checkpoint(CheckpointRow.committed(uuid="u-1", trial_id=t1, experiment_id=exp.id, run_id=0,
                                                 steps=5, metadata={}, resources={}))  # fmt: skip
    model = WidgetModel(store, exp.id)
    model.refresh()
    html = trial_detail_html(model, t1, store.checkpoints(trial_id=t1), [])
    assert "u-1" in html and html_lib.escape(load_code(exp.id, "u-1")) in html and "no output yet" in html
    namespace: dict[str, Any] = {}
    exec(load_code(exp.id, "u-1").replace(".load()", ""), {"det_jupyter": _FakeDet(exp)}, namespace)
    assert namespace["model"].uuid == "u-1"  # the snippet finds that very checkpoint


class _FakeDet:
    """``det_jupyter`` as the load snippet sees it, with this test's store."""

    def __init__(self, exp: Experiment) -> None:
        self._exp = exp

    def get_experiment(self, experiment_id: int) -> Experiment:
        assert experiment_id == self._exp.id
        return self._exp


def test_parallel_coordinates_use_log_and_categorical_axes(
    store: Store, widgets: list[ExperimentWidget]
) -> None:
    config = {
        **CONFIG,
        "hyperparameters": {
            "lr": {"type": "log", "base": 10, "minval": -4, "maxval": -1},
            "bs": {"type": "categorical", "vals": [8, 16, 32]},
            "fixed": 3,
        },
    }
    exp = _experiment(store, config)
    hps = [
        {"lr": 1e-4, "bs": 32, "fixed": 3},
        {"lr": 1e-2, "bs": 8, "fixed": 3},
        {"lr": 1e-1, "bs": 16, "fixed": 3},
    ]
    ids = [store.create_trial(exp.id, i, hp) for i, hp in enumerate(hps)]
    for t, best in zip(ids, (0.3, 0.1, 0.7), strict=True):
        store.update_trial(t, state=TrialState.COMPLETED, best_validation=best)
    w = ExperimentWidget(exp)
    widgets.append(w)
    dims = {d.label: d for d in w.parallel_figure.data[0].dimensions}
    assert list(dims) == ["trial", "lr (log)", "bs", "val_loss"]  # the constant is left out
    assert list(dims["lr (log)"].values) == pytest.approx([-4, -2, -1])
    assert list(dims["lr (log)"].ticktext) == ["0.0001", "0.001", "0.01", "0.1"]
    assert list(dims["bs"].values) == [2, 0, 1] and list(dims["bs"].ticktext) == ["8", "16", "32"]
    assert list(dims["trial"].values) == ids
    colors = list(w.parallel_figure.data[0].line.color)
    assert colors[1] == 1.0 and max(colors[0], colors[2]) < 0.86  # the best (trial 2) alone is red
    panels = {a.text: a for a in w.scatter_figure.layout.annotations}
    assert set(panels) == {"bs", "lr"}
    axis_types = {w.scatter_figure.layout[k].type for k in ("xaxis", "xaxis2")}
    assert axis_types == {"category", "log"}


def _decoded(value: Any) -> list[Any]:
    """A trace array as the page gets it: a list, or plotly's binary form of a numpy array."""
    if isinstance(value, dict):
        return np.frombuffer(value["buffer"], dtype=value["dtype"]).tolist()
    return list(value)


def test_a_full_state_request_carries_the_drawn_figure(store: Store, widgets: list[ExperimentWidget]) -> None:
    """What a page reload asks for: the curves and the title as drawn, not the empty figure it started as."""
    exp = _experiment(store)
    (t1,) = _trials(store, exp, 1)
    w = ExperimentWidget(exp)
    widgets.append(w)
    assert not any(tr.get("x") for tr in w.training_figure.get_state()["_widget_data"])
    _report(store, t1, "training", range(1, 4), lambda s: 1.0 / s)
    w.refresh()
    state = w.training_figure.get_state()
    (drawn,) = [tr for tr in state["_widget_data"] if tr.get("name") == f"trial {t1}"]
    assert _decoded(drawn["x"]) == [1, 2, 3] and _decoded(drawn["y"]) == pytest.approx([1.0, 0.5, 1 / 3])
    assert state["_widget_layout"]["title"]["text"] == "training loss"
    assert state["_config"]["responsive"] is True
    assert "width" not in state["_widget_layout"]  # fits its output area


def test_theme_from_the_page_restyles_every_chart(store: Store, widgets: list[ExperimentWidget]) -> None:
    exp = _experiment(store)
    w = ExperimentWidget(exp)
    widgets.append(w)
    assert w.training_figure.layout.template.layout.paper_bgcolor == "#ffffff"
    w.bridge.theme = {
        "light": False,
        "background": "#111111",
        "font": "rgba(255, 255, 255, 1)",
        "grid": "var(--x)",
    }
    for fig in (w.training_figure, w.validation_figure):
        tl = fig.layout.template.layout
        assert (tl.paper_bgcolor, tl.plot_bgcolor, tl.font.color) == (
            "#111111",
            "#111111",
            "rgba(255, 255, 255, 1)",
        )
        assert tl.xaxis.gridcolor == "#424242"  # an unusable value falls back to the dark default


def test_export_dataframe_csv_and_static_html(
    store: Store, widgets: list[ExperimentWidget], tmp_path: Path
) -> None:
    exp = _experiment(store)
    t1, t2, _ = _trials(store, exp)
    _report(store, t1, "training", range(1, 4), lambda s: 1.0 / s)
    _report(store, t2, "validation", range(2, 3), lambda s: 0.5)
    w = ExperimentWidget(exp)
    widgets.append(w)
    frame = w.to_dataframe()
    assert sorted(zip(frame["trial_id"], frame["kind"], frame["steps"])) == [
        (t1, "training", 1), (t1, "training", 2), (t1, "training", 3), (t2, "validation", 2)
    ]  # fmt: skip
    path = w.to_csv(tmp_path / "m.csv", kind="training")
    import pandas as pd

    assert list(pd.read_csv(path)["loss"]) == pytest.approx([1.0, 0.5, 1 / 3])
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    static = bundle["text/html"]
    assert "cdn.plot.ly" in static and static.count("Plotly.newPlot") == 2  # both charts, plotly.js once
    assert f"experiment {exp.id}" in static and "<table" in static
    assert '"x":[1,2,3]' in static.replace(" ", "")  # the drawn curve, as data in the page


def test_brushing_the_parallel_coordinates_filters_the_table(
    store: Store, widgets: list[ExperimentWidget]
) -> None:
    """Dragging along an axis in the page arrives as a restyle of ``dimensions[i].constraintrange``."""
    exp = _experiment(store)
    ids = _trials(store, exp, 3)
    for t, best in zip(ids, (0.3, 0.1, 0.7), strict=True):
        store.update_trial(t, state=TrialState.COMPLETED, best_validation=best)
    w = ExperimentWidget(exp)
    widgets.append(w)
    labels = [d.label for d in w.parallel_figure.data[0].dimensions]
    metric_axis = labels.index("val_loss")
    # what plotly's page code sends when the user brushes val_loss between 0.05 and 0.35
    w.parallel_figure.plotly_restyle({f"dimensions[{metric_axis}].constraintrange": [[0.05, 0.35]]}, [0])
    assert w.brushed == {ids[0], ids[1]}
    assert [r["id"] for r in w.table.rows] == [ids[0], ids[1]]
    assert "2 of 3 trials" in w.table_note.value
    # a redraw during the search keeps the brush
    store.update_trial(ids[2], best_validation=0.2)
    w.refresh()
    w._draw_analysis(force=True)
    assert w.parallel_figure.data[0].dimensions[metric_axis].constraintrange is not None
    assert w.brushed == {ids[0], ids[1], ids[2]}
    # clearing the brush lists every trial again
    w.parallel_figure.plotly_restyle({f"dimensions[{metric_axis}].constraintrange": None}, [0])
    assert w.brushed is None and len(w.table.rows) == 3 and w.table_note.value == ""


def test_asha_rungs_show_who_was_promoted_or_stopped_and_why(
    store: Store, widgets: list[ExperimentWidget]
) -> None:
    """The rungs are read from the searcher state in the store: the searcher's own decisions."""
    from det_jupyter.notebook.widget.rungs import asha_rungs
    from det_jupyter.searcher import Create, Stop, make_searcher

    config = {
        **CONFIG,
        "searcher": {"name": "async_halving", "metric": "val_loss", "max_trials": 4, "num_rungs": 2,
                     "divisor": 2, "max_time": 8, "time_metric": "batches"},
    }  # fmt: skip
    exp = _experiment(store, config)
    cfg = load_config(config)
    searcher = make_searcher(cfg.searcher, cfg.hparam_space, seed=store.get_experiment(exp.id).seed)
    trial_of: dict[int, int] = {}
    for op in searcher.initial_operations():
        if isinstance(op, Create):
            trial_of[op.request_id] = store.create_trial(exp.id, op.request_id, op.hparams)
    stopped = set()
    for rid, metric in zip(
        sorted(trial_of), (0.5, 0.2, 0.9, 0.1), strict=True
    ):  # the first rung is 4 batches
        ops = searcher.on_validation_completed(rid, metric, 4)
        stopped |= {op.request_id for op in ops if isinstance(op, Stop)}
    for rid, tid in trial_of.items():
        state = TrialState.STOPPED if rid in stopped else TrialState.ACTIVE
        store.update_trial(tid, state=state, best_validation=0.1 * rid)
    store.save_searcher_state(exp.id, searcher.state_dict(), searcher.progress())
    assert stopped  # the searcher stopped someone: there is something to explain

    w = ExperimentWidget(exp)
    widgets.append(w)
    (rung,) = [r for r in asha_rungs(w.model) or [] if r.index == 0]
    assert rung.length == 4 and [e.metric for e in rung.entries] == sorted(e.metric for e in rung.entries)
    outcomes = {e.trial_id: e.outcome for e in rung.entries}
    assert {t for t, o in outcomes.items() if o == "stopped"} == {trial_of[r] for r in stopped}
    assert all(o in ("stopped", "waiting") for o in outcomes.values())
    assert "ASHA rungs" in w.rungs.value and "not among the best 1/2" in w.rungs.value
    assert w.rungs.layout.display is None


def test_plotly_code_reaches_the_page_once_per_kernel(store: Store, widgets: list[ExperimentWidget]) -> None:
    """A figure's state carries a small loader, not plotly's ~5 MB bundle; one library widget carries that."""
    import json

    from det_jupyter.notebook.widget.plotly_bundle import plotly_library

    exp = _experiment(store)
    w = ExperimentWidget(exp)
    widgets.append(w)
    for fig in (w.training_figure, w.validation_figure):
        assert len(json.dumps(fig.get_state())) < 100_000
    library = plotly_library()
    assert library is plotly_library() and len(library.bundle) > 1_000_000
    assert library not in w.widget.children  # closing a widget leaves the page's copy alone
    w.close()
    assert plotly_library() is library and library.comm is not None


def test_the_full_state_keeps_what_the_page_reports_as_defaults(
    store: Store, widgets: list[ExperimentWidget]
) -> None:
    """After each render the page reports the computed figure; plain plotly then drops every property
    equal to it ("name": "trial 1") from the data the full state is built from: a reload drew unnamed lines."""
    exp = _experiment(store)
    (t1,) = _trials(store, exp, 1)
    w = ExperimentWidget(exp)
    widgets.append(w)
    _report(store, t1, "training", range(1, 4), lambda s: 1.0 / s)
    w.refresh()
    fig = w.training_figure
    (i,) = [i for i, tr in enumerate(fig.data) if tr.name == f"trial {t1}"]
    width = fig.data[i].line.width
    delta = {"uid": fig.data[i].uid, "name": f"trial {t1}", "showlegend": True, "line": {"width": width}}
    fig._handler_js2py_traceDeltas(
        {"new": {"trace_deltas": [delta], "trace_edit_id": fig._last_trace_edit_id}}
    )
    fig._handler_js2py_layoutDelta(
        {
            "new": {
                "layout_delta": {"title": {"text": "training loss"}},
                "layout_edit_id": fig._last_layout_edit_id,
            }
        }
    )
    state = fig.get_state()
    drawn = state["_widget_data"][i]
    assert drawn["name"] == f"trial {t1}" and drawn["showlegend"] is True and drawn["line"]["width"] == width
    assert state["_widget_layout"]["title"]["text"] == "training loss"
