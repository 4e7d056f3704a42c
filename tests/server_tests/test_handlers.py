"""The REST API of the server extension, through a real Jupyter server (pytest_jupyter's ``jp_fetch``).

Stores are filled through the Store API exactly as a controller writes them (``fill_store``); one
test (slow) reads an experiment that really ran on the session's LocalCluster.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from det_jupyter.states import ControlAction, ExperimentState
from det_jupyter.store import Store
from det_jupyter.worker.gpu import gpu_inventory

from .helpers import fill_store

API = "det-jupyter/api"

ENDPOINTS = [
    ("GET", ""),
    ("GET", "experiments"),
    ("GET", "experiments/1"),
    ("GET", "experiments/1/trials"),
    ("GET", "trials/1"),
    ("GET", "trials/1/metrics"),
    ("GET", "trials/1/logs"),
    ("GET", "cluster"),
    ("POST", "experiments/1/actions/kill"),
    ("DELETE", "experiments/1"),
]


async def fetch(jp_fetch: Any, path: str, method: str = "GET", **kwargs: Any) -> HTTPResponse:
    if method == "POST":
        kwargs.setdefault("body", b"")
    response: HTTPResponse = await jp_fetch(
        *f"{API}/{path}".strip("/").split("/"), method=method, raise_error=False, **kwargs
    )
    return response


async def get_json(jp_fetch: Any, path: str, status: int = 200, **params: Any) -> Any:
    response = await fetch(jp_fetch, path, params=params)
    assert response.code == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_refuses_requests_without_a_token(
    jp_fetch: Any, det_store: Store, method: str, path: str
) -> None:
    ids = fill_store(det_store)
    response = await fetch(jp_fetch, path, method, headers={"Authorization": ""})
    assert response.code == 403
    assert det_store.get_experiment(ids["done"]).state == ExperimentState.COMPLETED
    assert det_store.pending_requests(ids["done"]) == []


async def test_index_names_the_store(jp_fetch: Any, det_store: Store) -> None:
    body = await get_json(jp_fetch, "")
    assert body["store"] == str(det_store.path)
    assert body["version"]


async def test_experiment_list_matches_the_store(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    body = await get_json(jp_fetch, "experiments")
    assert body["total"] == 2 and body["offset"] == 0 and body["limit"] == 50
    listed = {e["id"]: e for e in body["experiments"]}
    assert [e["id"] for e in body["experiments"]] == [ids["running"], ids["done"]]  # newest first
    for exp_id, exp in listed.items():
        row = det_store.get_experiment(exp_id)
        trials = det_store.list_trials(exp_id)
        assert exp["name"] == row.name
        assert exp["state"] == row.state.value
        assert exp["progress"] == row.progress
        assert exp["created_at"] == row.created_at and exp["ended_at"] == row.ended_at
        assert exp["num_trials"] == len(trials)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.value] = counts.get(t.state.value, 0) + 1
        assert exp["trial_counts"] == counts
        scored = [t.best_validation for t in trials if t.best_validation is not None]
        assert exp["sparkline"] == scored
    assert listed[ids["done"]]["best_metric"] == 0.25  # smaller is better
    assert listed[ids["done"]]["metric"] == "val_loss" and listed[ids["done"]]["searcher"] == "random"
    assert listed[ids["running"]]["best_metric"] == 0.7  # larger is better
    assert listed[ids["running"]]["smaller_is_better"] is False


async def test_experiment_list_pages(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    body = await get_json(jp_fetch, "experiments", limit=1, offset=1)
    assert body["total"] == 2 and body["limit"] == 1 and body["offset"] == 1
    assert [e["id"] for e in body["experiments"]] == [ids["done"]]
    assert (await get_json(jp_fetch, "experiments", offset=5))["experiments"] == []


async def test_experiment_detail_has_config_and_trials(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    body = await get_json(jp_fetch, f"experiments/{ids['done']}")
    row = det_store.get_experiment(ids["done"])
    assert body["config"] == row.config
    assert body["entrypoint_name"] == "train" and body["seed"] == 1
    trials = det_store.list_trials(ids["done"])
    assert body["trials"]["total"] == 3
    assert [t["id"] for t in body["trials"]["trials"]] == [t.id for t in trials]
    for got, want in zip(body["trials"]["trials"], trials):
        assert got["hparams"] == want.hparams
        assert got["state"] == want.state.value
        assert got["restarts"] == want.restarts
        assert got["best_validation"] == want.best_validation
        assert got["steps_completed"] == want.steps_completed
    page = await get_json(jp_fetch, f"experiments/{ids['done']}/trials", limit=2, offset=1)
    assert page["total"] == 3 and [t["id"] for t in page["trials"]] == [t.id for t in trials[1:]]


async def test_trial_detail_has_series_checkpoints_and_log_tail(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    tid = ids["trial"]
    body = await get_json(jp_fetch, f"trials/{tid}", logs_tail=10)
    row = det_store.get_trial(tid)
    assert body["hparams"] == row.hparams and body["state"] == "COMPLETED"
    assert body["best_validation"] == 0.25
    series = {(s["kind"], s["name"]): s for s in body["metrics"]}
    assert series[("training", "loss")]["steps"] == list(range(1, 21))
    assert series[("training", "loss")]["values"] == [1.0 / s for s in range(1, 21)]
    assert series[("validation", "val_loss")]["steps"] == [5, 10, 15, 20]
    assert [c["uuid"] for c in body["checkpoints"]] == [f"ckpt-{tid}"]
    assert body["checkpoints"][0]["metric"] == 0.25
    assert [line["line"] for line in body["logs"]] == [r.line for r in det_store.logs(tid, tail=10)]
    assert len(body["logs"]) == 10


async def test_metric_series_are_downsampled_on_request(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    body = await get_json(jp_fetch, f"trials/{ids['trial']}/metrics", kind="training", max_points=5)
    (loss,) = body["series"]
    assert loss["name"] == "loss" and loss["total_points"] == 20
    assert len(loss["steps"]) == 5 and loss["steps"][0] == 1 and loss["steps"][-1] == 20
    full = await get_json(jp_fetch, f"trials/{ids['trial']}/metrics")
    assert {(s["kind"], len(s["steps"])) for s in full["series"]} == {("training", 20), ("validation", 4)}


async def test_nan_metrics_are_sent_as_null(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    body = await get_json(jp_fetch, f"trials/{ids['nan_trial']}/metrics", kind="training")
    (loss,) = body["series"]
    assert loss["steps"][-1] == 21 and loss["values"][-1] is None


@pytest.mark.parametrize(
    "path",
    [
        "experiments/999",
        "experiments/999/trials",
        "trials/999",
        "trials/999/metrics",
    ],
)
async def test_unknown_ids_are_404_with_a_message(jp_fetch: Any, det_store: Store, path: str) -> None:
    fill_store(det_store)
    body = await get_json(jp_fetch, path, status=404)
    assert "999 not found" in body["message"]


async def test_unknown_ids_in_mutations_are_404(jp_fetch: Any, det_store: Store) -> None:
    for method, path in [("POST", "experiments/999/actions/pause"), ("DELETE", "experiments/999")]:
        response = await fetch(jp_fetch, path, method)
        assert response.code == 404
        assert "experiment 999 not found" in json.loads(response.body)["message"]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("experiments", {"limit": "abc"}, "'limit'"),
        ("experiments", {"limit": "0"}, "'limit'"),
        ("experiments", {"limit": "100000"}, "'limit'"),
        ("experiments", {"offset": "-1"}, "'offset'"),
        ("experiments/abc", {}, "experiment id"),
        ("experiments/1/trials", {"limit": "x"}, "'limit'"),
        ("trials/1", {"max_points": "1"}, "'max_points'"),
        ("trials/1", {"logs_tail": "many"}, "'logs_tail'"),
        ("trials/-3", {}, "trial id"),
        ("trials/1/metrics", {"kind": "test"}, "'kind'"),
        ("trials/1/logs", {"after": "-1"}, "'after'"),
        ("trials/1/logs", {"tail": "0"}, "'tail'"),
    ],
)
async def test_bad_input_is_400_naming_the_parameter(
    jp_fetch: Any, det_store: Store, path: str, params: dict[str, str], named: str
) -> None:
    fill_store(det_store)
    body = await get_json(jp_fetch, path, status=400, **params)
    assert named in body["message"]


async def test_unknown_action_is_400(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    response = await fetch(jp_fetch, f"experiments/{ids['running']}/actions/explode", "POST")
    assert response.code == 400
    assert "unknown action 'explode'" in json.loads(response.body)["message"]


async def test_actions_write_control_requests(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    exp_id = ids["running"]
    response = await fetch(jp_fetch, f"experiments/{exp_id}/actions/pause", "POST")
    assert response.code == 202
    body = json.loads(response.body)
    assert body["action"] == "PAUSE" and body["state"] == "ACTIVE"
    response = await fetch(jp_fetch, f"experiments/{exp_id}/actions/kill", "POST")
    assert response.code == 202
    pending = det_store.pending_requests(exp_id)
    assert [r.action for r in pending] == [ControlAction.PAUSE, ControlAction.KILL]
    assert pending[0].id == body["request_id"]


async def test_actions_the_state_forbids_are_409(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    response = await fetch(jp_fetch, f"experiments/{ids['running']}/actions/activate", "POST")
    assert response.code == 409
    assert "ACTIVE" in json.loads(response.body)["message"]
    response = await fetch(jp_fetch, f"experiments/{ids['done']}/actions/kill", "POST")
    assert response.code == 409
    assert det_store.pending_requests(ids["done"]) == []


async def test_delete_of_an_active_experiment_is_409_and_keeps_it(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    response = await fetch(jp_fetch, f"experiments/{ids['running']}", "DELETE")
    assert response.code == 409
    assert "kill it first" in json.loads(response.body)["message"]
    assert det_store.get_experiment(ids["running"]).state == ExperimentState.ACTIVE


async def test_delete_of_a_terminal_experiment_removes_it(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    response = await fetch(jp_fetch, f"experiments/{ids['done']}", "DELETE")
    assert response.code == 204
    assert [r.id for r in det_store.list_experiments()] == [ids["running"]]
    assert (await fetch(jp_fetch, f"experiments/{ids['done']}")).code == 404


async def _login_cookie(jp_fetch: Any) -> str:
    """Authenticate once with the token; the server answers with its login cookie."""
    response = await fetch(jp_fetch, "experiments")
    cookies = response.headers.get_list("Set-Cookie")
    login = [c.split(";")[0] for c in cookies if c.startswith("username-")]
    assert login, cookies
    return login[0]


async def test_cookie_authenticated_mutations_need_the_xsrf_token(jp_fetch: Any, det_store: Store) -> None:
    ids = fill_store(det_store)
    cookie = await _login_cookie(jp_fetch)
    path = f"experiments/{ids['running']}/actions/kill"
    # a browser session (cookie, no token) that does not echo the XSRF token: refused
    response = await fetch(jp_fetch, path, "POST", headers={"Authorization": "", "Cookie": cookie})
    assert response.code == 403
    assert "xsrf" in json.loads(response.body)["message"].lower()
    response = await fetch(
        jp_fetch, f"experiments/{ids['done']}", "DELETE", headers={"Authorization": "", "Cookie": cookie}
    )
    assert response.code == 403
    assert det_store.pending_requests(ids["running"]) == []
    assert det_store.get_experiment(ids["done"]).state == ExperimentState.COMPLETED
    # GETs with the cookie work; with the XSRF cookie and header echoed, the mutation goes through
    assert (await fetch(jp_fetch, "experiments", headers={"Authorization": "", "Cookie": cookie})).code == 200
    headers = {"Authorization": "", "Cookie": f"{cookie}; _xsrf=abc123", "X-XSRFToken": "abc123"}
    response = await fetch(jp_fetch, path, "POST", headers=headers)
    assert response.code == 202
    assert [r.action for r in det_store.pending_requests(ids["running"])] == [ControlAction.KILL]


async def test_cluster_without_a_scheduler_reports_the_server_gpus(jp_fetch: Any, det_store: Store) -> None:
    body = await get_json(jp_fetch, "cluster")
    assert body["attached"] is False
    assert body["source"] == "none"
    assert "no cluster running" in body["message"]
    assert body["workers"] == []
    assert [g["uuid"] for g in body["gpus"]] == [g.uuid for g in gpu_inventory()]


class TestAttachedCluster:
    """``c.ExperimentService.scheduler_address`` set: the cluster view describes that Dask cluster."""

    @pytest.fixture
    def service_config(self, dask_client: Any) -> dict[str, Any]:
        return {"scheduler_address": dask_client.scheduler.address}

    async def test_cluster_lists_workers_and_slots(self, jp_fetch: Any, dask_client: Any) -> None:
        body = await get_json(jp_fetch, "cluster")
        assert body["attached"] is True
        assert body["scheduler"] == dask_client.scheduler.address
        assert sorted(w["address"] for w in body["workers"]) == sorted(
            dask_client.scheduler_info()["workers"]
        )
        assert body["slots"]["CPU"] == 2.0


class TestUnreachableCluster:
    """A scheduler that is gone: the cluster view says so and falls back to the server's GPUs."""

    @pytest.fixture
    def service_config(self) -> dict[str, Any]:
        return {"scheduler_address": "tcp://127.0.0.1:9", "cluster_timeout": 0.5}

    async def test_cluster_says_unreachable(self, jp_fetch: Any) -> None:
        body = await get_json(jp_fetch, "cluster")
        assert body["attached"] is False
        assert "unreachable" in body["message"]


@pytest.mark.slow
async def test_a_real_experiment_reads_back_as_the_store_holds_it(
    jp_fetch: Any, det_store: Store, dask_client: Any
) -> None:
    import det_jupyter

    def train(ctx: Any) -> None:
        for step in range(1, 7):
            ctx.report_training_metrics(step, {"loss": 1.0 / step})
            if step % 3 == 0:
                ctx.report_validation_metrics(step, {"val_loss": abs(ctx.hparams["x"]) + 1.0 / step})
                with ctx.checkpoint.save(step) as path:
                    (path / "step").write_text(str(step))
        print("done")

    cfg = {
        "name": "server-e2e",
        "searcher": {"name": "grid", "metric": "val_loss", "max_time": 6, "time_metric": "batches"},
        "hyperparameters": {"x": {"type": "categorical", "vals": [0.1, 0.2]}},
        "checkpoint_storage": {"type": "shared_fs", "host_path": str(det_store.path.parent / "ckpt")},
    }
    exp = det_jupyter.create_experiment(cfg, train, cluster=dask_client, store=det_store)
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    listed = (await get_json(jp_fetch, "experiments"))["experiments"]
    assert [(e["id"], e["state"], e["num_trials"]) for e in listed] == [(exp.id, "COMPLETED", 2)]
    assert listed[0]["best_metric"] == pytest.approx(0.1 + 1 / 6)
    detail = await get_json(jp_fetch, f"experiments/{exp.id}")
    assert [t["id"] for t in detail["trials"]["trials"]] == [t.id for t in exp.trials()]
    for t in exp.trials():
        body = await get_json(jp_fetch, f"trials/{t.id}")
        assert body["hparams"] == t.hparams and body["state"] == "COMPLETED"
        assert [c["uuid"] for c in body["checkpoints"]] == [c.uuid for c in t.checkpoints()]
        assert [line["line"] for line in body["logs"]] == t.logs()
        val = next(s for s in body["metrics"] if s["kind"] == "validation")
        assert val["steps"] == [3, 6]
