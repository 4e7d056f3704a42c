"""What the sidebar needs from the REST API (issue #13), on real store rows through a real server:
live log tails, truthful progress, the best trial, labels, the cluster of the home's master and
dashboard links through jupyter-server-proxy; and the one palette / number format shared with the
notebook widget.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from det_jupyter.master.files import MasterInfo, MasterPaths, process_create_time, write_info
from det_jupyter.server import dashboard, palette
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import LogRow, Store

from .helpers import fill_store
from .test_handlers import get_json

ROOT = Path(__file__).resolve().parents[2]


# --- live log tails ----------------------------------------------------------------------------


async def test_logs_tail_then_follow_with_the_cursor(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    tid = ids["trial"]
    first = await get_json(jp_fetch, f"trials/{tid}/logs", tail=10)
    assert [line["line"] for line in first["lines"]] == [f"trial {tid} line {i}" for i in range(140, 150)]
    assert first["skipped"] == 140 and first["state"] == "COMPLETED" and first["trial_id"] == tid
    # nothing new: the same cursor back, no lines
    again = await get_json(jp_fetch, f"trials/{tid}/logs", after=first["cursor"])
    assert again == {**first, "lines": [], "skipped": 0}
    # the trial prints three more lines: exactly those come, in order
    det_store.add_logs([LogRow(tid, 1, 200.0 + i, f"new {i}") for i in range(3)])
    det_store.add_logs([LogRow(ids["nan_trial"], 0, 300.0, "another trial's line")])
    new = await get_json(jp_fetch, f"trials/{tid}/logs", after=first["cursor"])
    assert [(line["run_id"], line["line"]) for line in new["lines"]] == [
        (1, "new 0"),
        (1, "new 1"),
        (1, "new 2"),
    ]
    assert new["cursor"] > first["cursor"] and new["skipped"] == 0
    assert (await get_json(jp_fetch, f"trials/{tid}/logs", after=new["cursor"]))["lines"] == []
    # from the start, all 153 lines
    everything = await get_json(jp_fetch, f"trials/{tid}/logs", tail=1000)
    assert len(everything["lines"]) == 153 and everything["cursor"] == new["cursor"]


async def test_trial_detail_hands_out_the_cursor_of_its_log_tail(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    tid = ids["trial"]
    detail = await get_json(jp_fetch, f"trials/{tid}", logs_tail=5)
    assert [line["line"] for line in detail["logs"]] == [f"trial {tid} line {i}" for i in range(145, 150)]
    det_store.add_logs([LogRow(tid, 0, 500.0, "after the detail")])
    page = await get_json(jp_fetch, f"trials/{tid}/logs", after=detail["logs_cursor"])
    assert [line["line"] for line in page["lines"]] == ["after the detail"]


async def test_logs_of_an_unknown_trial_are_404(jp_fetch: Any, det_store: Store) -> None:
    fill_store(det_store)
    body = await get_json(jp_fetch, "trials/999/logs", status=404)
    assert "999" in body["message"]


# --- truthful progress ---------------------------------------------------------------------------


def _killed_experiment(store: Store) -> tuple[int, list[int]]:
    """ASHA-less random search of 4 planned trials x 300 batches, killed after 32 + 10 batches.

    The engine writes ``progress = 1.0`` when an experiment ends, whatever the reason: the API
    must not show that as 100 %.
    """
    cfg = {
        "name": "killed",
        "description": "killed early",
        "labels": ["iris", "asha"],
        "searcher": {
            "name": "random",
            "metric": "val_loss",
            "smaller_is_better": True,
            "max_trials": 4,
            "max_time": 300,
            "time_metric": "batches",
        },
    }
    exp = store.create_experiment(
        name="killed", config=cfg, entrypoint=b"x", seed=1, description="killed early"
    )
    t0 = store.get_experiment(exp).created_at
    trials = []
    for i, (done, value) in enumerate([(32, 0.4), (10, 0.3)]):
        tid = store.create_trial(exp, i, {"lr": 0.1})
        store.update_trial(
            tid,
            state=TrialState.CANCELED,
            steps_completed=done,
            searcher_time=float(done),
            best_validation=value,
            started_at=t0 + 1.0,
            ended_at=t0 + 60.0,
        )
        trials.append(tid)
    store.update_experiment(exp, state=ExperimentState.CANCELED, progress=1.0, ended_at=t0 + 60.0)
    return exp, trials


async def test_a_killed_experiment_is_not_100_percent(jp_fetch: Any, det_store: Store) -> None:
    exp_id, trials = _killed_experiment(det_store)
    assert det_store.get_experiment(exp_id).progress == 1.0  # what the engine wrote
    (listed,) = (await get_json(jp_fetch, "experiments"))["experiments"]
    assert listed["progress"] == pytest.approx((32 + 10) / (4 * 300))
    assert listed["searcher_progress"] == 1.0
    assert listed["planned_trials"] == 4 and listed["num_trials"] == 2
    assert listed["trial_counts"] == {"CANCELED": 2}
    assert listed["max_time"] == 300 and listed["time_metric"] == "batches"
    assert listed["duration"] == pytest.approx(60.0)
    assert listed["eta"] is None  # not running
    assert listed["description"] == "killed early" and listed["labels"] == ["iris", "asha"]
    assert listed["best_trial_id"] == trials[1]  # 0.3 < 0.4, smaller is better
    detail = await get_json(jp_fetch, f"experiments/{exp_id}")
    assert detail["progress"] == listed["progress"]
    rows = (await get_json(jp_fetch, f"experiments/{exp_id}/trials"))["trials"]
    assert [t["is_best"] for t in rows] == [False, True]
    assert [t["progress"] for t in rows] == [pytest.approx(32 / 300), pytest.approx(10 / 300)]
    assert [t["searcher_time"] for t in rows] == [32.0, 10.0]
    assert [t["is_best"] for t in detail["trials"]["trials"]] == [False, True]


async def test_completed_and_stopped_trials_count_whole(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    listed = {e["id"]: e for e in (await get_json(jp_fetch, "experiments"))["experiments"]}
    assert listed[ids["done"]]["progress"] == 1.0  # COMPLETED
    assert listed[ids["done"]]["best_trial_id"] == ids["trial"]  # best 0.25
    running = listed[ids["running"]]
    # grid of no hyperparameters: one point planned, but two trials exist; no max_time, so the
    # running trials count 0 until they end
    assert running["planned_trials"] == 2 and running["progress"] == 0.0
    assert running["best_trial_id"] is not None
    tid = det_store.list_trials(ids["running"])[0].id
    det_store.update_trial(tid, state=TrialState.STOPPED)
    running = {e["id"]: e for e in (await get_json(jp_fetch, "experiments"))["experiments"]}[ids["running"]]
    assert running["progress"] == 0.5 and running["trial_counts"] == {"QUEUED": 1, "STOPPED": 1}
    detail = await get_json(jp_fetch, f"trials/{tid}")
    assert detail["progress"] == 1.0 and detail["is_best"] is True


async def test_an_active_experiment_has_an_eta(jp_fetch: Any, det_store: Store) -> None:
    cfg = {
        "name": "eta",
        "searcher": {"name": "single", "metric": "loss", "max_time": 100, "time_metric": "batches"},
    }
    exp = det_store.create_experiment(name="eta", config=cfg, entrypoint=b"x", seed=1)
    tid = det_store.create_trial(exp, 0, {})
    started = det_store.get_experiment(exp).created_at
    det_store.update_trial(tid, state=TrialState.ACTIVE, searcher_time=25.0, started_at=started)
    (listed,) = (await get_json(jp_fetch, "experiments"))["experiments"]
    assert listed["progress"] == 0.25 and listed["planned_trials"] == 1
    # a quarter done: three times the elapsed time is left
    assert listed["eta"] == pytest.approx(3 * listed["duration"], rel=0.05, abs=1.0)


# --- the cluster the experiments run on ----------------------------------------------------------


@pytest.fixture
def service_config() -> dict[str, Any]:
    """A silent scheduler is given up on quickly."""
    return {"cluster_timeout": 1.0}


def _write_master_info(home: Path, **values: Any) -> MasterInfo:
    """A master.json naming this (live) test process as the home's master."""
    pid = os.getpid()
    info = MasterInfo(pid=pid, create_time=process_create_time(pid), started_at=0.0, heartbeat=0.0, **values)
    write_info(MasterPaths.of(home).info, info)
    return info


async def test_cluster_is_the_masters_embedded_cluster(
    jp_fetch: Any, det_store: Store, dask_client: Any
) -> None:
    link = dask_client.dashboard_link if dask_client.dashboard_link else "http://127.0.0.1:8787/status"
    _write_master_info(
        det_store.path.parent,
        scheduler=dask_client.scheduler.address,
        dashboard_link=link,
        workers=[{"name": "w0", "resources": {"CPU": 1}}, {"name": "w1", "resources": {"CPU": 1}}],
        experiments=[7],
    )
    body = await get_json(jp_fetch, "cluster")
    assert body["attached"] is True and body["source"] == "master"
    assert body["master_pid"] == os.getpid() and body["experiments"] == [7]
    assert body["scheduler"] == dask_client.scheduler.address
    assert "det-jupyter master" in body["message"]
    assert sorted(w["address"] for w in body["workers"]) == sorted(dask_client.scheduler_info()["workers"])
    assert body["slots"]["CPU"] == 2.0


async def test_cluster_falls_back_to_master_json_when_its_scheduler_is_silent(
    jp_fetch: Any, det_store: Store, service_config: dict[str, Any]
) -> None:
    _write_master_info(
        det_store.path.parent,
        scheduler="tcp://127.0.0.1:9",
        dashboard_link="http://127.0.0.1:38111/status",
        workers=[{"name": "gpu-0", "resources": {"GPU": 1}}],
    )
    body = await get_json(jp_fetch, "cluster")
    assert body["attached"] is True and body["source"] == "master"
    assert [w["name"] for w in body["workers"]] == ["gpu-0"]
    assert body["slots"] == {"GPU": 1.0, "CPU": 0.0}
    assert "did not answer" in body["message"]
    assert body["dashboard_link"] == "http://127.0.0.1:38111/status"
    assert body["dashboard_proxy_path"] is None  # jupyter-server-proxy is not installed here


async def test_dashboard_link_goes_through_the_proxy_when_installed(
    jp_fetch: Any,
    det_store: Store,
    jp_base_url: str,
    monkeypatch: pytest.MonkeyPatch,
    service_config: dict[str, Any],
) -> None:
    monkeypatch.setattr(dashboard, "proxy_installed", lambda: True)
    from det_jupyter.server import service

    monkeypatch.setattr(service, "proxy_installed", lambda: True)
    _write_master_info(
        det_store.path.parent, scheduler="tcp://127.0.0.1:9", dashboard_link="http://127.0.0.1:38111/status"
    )
    body = await get_json(jp_fetch, "cluster")
    assert body["dashboard_proxy_path"] == f"{jp_base_url}proxy/38111/status"


def test_proxy_paths_like_dask_labextension() -> None:
    assert dashboard.dashboard_proxy_path("http://localhost:8787/status", "/") == "/proxy/8787/status"
    assert (
        dashboard.dashboard_proxy_path("http://0.0.0.0:8787", "/hub/user/a/")
        == "/hub/user/a/proxy/8787/status"
    )
    assert dashboard.dashboard_proxy_path("http://gpu-7:8787/status", "/") == "/proxy/gpu-7:8787/status"
    assert dashboard.dashboard_proxy_path("http://127.0.0.1/status", "/") is None  # no port
    assert dashboard.direct_dashboard_link("127.0.0.1:8787") == "http://127.0.0.1:8787/status"


# --- one palette, one number format ----------------------------------------------------------------


def test_every_state_has_a_colour_in_both_themes() -> None:
    states = {s.value for s in TrialState} | {s.value for s in ExperimentState}
    assert set(palette.STATE_COLORS) == states
    for color in palette.STATE_COLORS.values():
        assert color["css"].startswith("var(--jp-")
        assert all(len(color[k]) == 7 and color[k].startswith("#") for k in ("light", "dark"))


METRIC_SAMPLES = [
    0.0, 1.0, -1.0, 0.5, 1 / 12, 1234.5, -1234.5, 9.99951, 9999.4, 10000.0, 123456.0,
    0.001, 0.0012345, 9.995e-4, 0.00099999, -2e-4, 1e-10, 3.14159e20, 2.5e-3, 0.12345,
]  # fmt: skip
PERCENT_SAMPLES = [0.0, 0.001, 0.0999, 0.106, 0.5, 0.29, 0.57, 0.999, 1.0, 1.5, -0.2]
DURATION_SAMPLES = [
    0.0,
    0.4,
    45.0,
    59.9,
    60.0,
    200.0,
    3599.0,
    3600.0,
    3725.0,
    86399.0,
    86400.0,
    183600.0,
    1e7,
    -5.0,
]


def test_the_sidebar_formats_numbers_exactly_as_python_does(tmp_path: Path) -> None:
    """The compiled ``labextension/lib/numbers.js`` run by node on the same values."""
    node = shutil.which("node")
    lib = ROOT / "labextension" / "lib" / "numbers.js"
    if node is None or not lib.exists():
        pytest.skip("node or the built labextension (labextension/lib/numbers.js) missing")
    # lib/ holds ES modules in a package node reads as CommonJS: load them as .mjs
    module = tmp_path / "numbers.mjs"
    module.write_text(lib.read_text().replace("from './wire'", "from './wire.mjs'"))
    shutil.copy(lib.with_name("wire.js"), tmp_path / "wire.mjs")
    samples = [METRIC_SAMPLES, PERCENT_SAMPLES, DURATION_SAMPLES]
    script = (
        f"import('{module.as_uri()}').then(m => {{ const [a, b, c] = {json.dumps(samples)};"
        " console.log(JSON.stringify([a.map(m.formatMetric), b.map(m.formatPercent), c.map(m.formatDuration)])); })"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    expected = [
        [palette.format_metric(v) for v in METRIC_SAMPLES],
        [palette.format_percent(v) for v in PERCENT_SAMPLES],
        [palette.format_duration(v) for v in DURATION_SAMPLES],
    ]
    assert json.loads(out.stdout) == expected
    assert palette.format_metric(None) == palette.NO_VALUE == "–"
