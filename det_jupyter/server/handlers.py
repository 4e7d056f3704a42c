"""Thin REST handlers under ``/det-jupyter/api/``: parse, call :class:`ExperimentService`, write JSON.

Every verb is ``@web.authenticated`` (no token or login cookie: 403); ``APIHandler`` checks XSRF on
POST and DELETE for cookie-authenticated browsers. No route reads or serves a file: answers are rows
of the store (``tests/server_tests/test_security_routes.py`` checks all three for every route).
Errors are JSON ``{"message": ...}``: an unknown id is 404, a malformed parameter 400 naming it, an
action the experiment's state forbids 409.

| verb | path | answer |
| --- | --- | --- |
| GET | ``/det-jupyter/api/`` | version and store path |
| GET | ``experiments?limit=&offset=`` | :class:`ExperimentListModel` |
| GET / DELETE | ``experiments/<id>?limit=&offset=`` | :class:`ExperimentDetailModel` / 204 |
| GET | ``experiments/<id>/trials?limit=&offset=`` | :class:`TrialListModel` |
| POST | ``experiments/<id>/actions/<pause|activate|kill>`` | :class:`ActionModel` (202) |
| GET | ``trials/<id>?max_points=&logs_tail=`` | :class:`TrialDetailModel` |
| GET | ``trials/<id>/metrics?kind=&max_points=`` | ``{"trial_id", "series": [MetricSeriesModel]}`` |
| GET | ``trials/<id>/logs?after=&tail=`` | :class:`LogPageModel` (lines after a cursor, for live tails) |
| GET | ``cluster`` | :class:`ClusterModel` |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

from det_jupyter.errors import NotFoundError
from det_jupyter.server.service import SETTINGS_KEY, ActionConflictError, ExperimentService
from det_jupyter.states import ControlAction

__all__ = ["API_PREFIX", "route_table"]

API_PREFIX = "det-jupyter/api"
_KINDS = ("training", "validation")
_T = TypeVar("_T")


class _Handler(APIHandler):
    """Shared parsing and error mapping; subclasses stay one call long per verb."""

    @property
    def service(self) -> ExperimentService:
        service: ExperimentService = self.settings[SETTINGS_KEY]
        return service

    async def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the service's threads; map the store's errors to HTTP answers."""
        try:
            return await IOLoop.current().run_in_executor(self.service.executor, fn)
        except NotFoundError as exc:
            raise web.HTTPError(404, str(exc)) from exc
        except ActionConflictError as exc:
            raise web.HTTPError(409, str(exc)) from exc

    def reply(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload, allow_nan=False))

    def int_path(self, value: str, what: str) -> int:
        if not value.isdigit():
            raise web.HTTPError(400, f"{what} must be a non-negative integer, got {value!r}")
        return int(value)

    def int_query(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        value = self.optional_int_query(name, low=low, high=high)
        return default if value is None else value

    def optional_int_query(self, name: str, *, low: int, high: int | None = None) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise web.HTTPError(400, f"query parameter {name!r} must be an integer {bound}, got {raw!r}")
        return value

    def page(self) -> tuple[int, int]:
        limit = self.int_query(
            "limit", self.service.default_page_size, low=1, high=self.service.max_page_size
        )
        return limit, self.int_query("offset", 0, low=0)


class IndexHandler(_Handler):
    """``GET /det-jupyter/api/``: the extension is there, and which store it reads."""

    @web.authenticated
    async def get(self) -> None:
        from det_jupyter import __version__

        self.reply({"version": __version__, "store": str(self.service.path)})


class ExperimentsHandler(_Handler):
    """``GET experiments``: a page of experiments, newest first."""

    @web.authenticated
    async def get(self) -> None:
        limit, offset = self.page()
        self.reply(await self.call(lambda: self.service.list_experiments(limit=limit, offset=offset)))


class ExperimentHandler(_Handler):
    """``GET experiments/<id>``: detail with config and a page of trials; ``DELETE``: terminal only."""

    @web.authenticated
    async def get(self, experiment_id: str) -> None:
        exp_id = self.int_path(experiment_id, "experiment id")
        limit, offset = self.page()
        self.reply(await self.call(lambda: self.service.experiment(exp_id, limit=limit, offset=offset)))

    @web.authenticated
    async def delete(self, experiment_id: str) -> None:
        exp_id = self.int_path(experiment_id, "experiment id")
        await self.call(lambda: self.service.delete(exp_id))
        self.set_status(204)
        self.finish()


class TrialsHandler(_Handler):
    """``GET experiments/<id>/trials``: a page of the experiment's trials."""

    @web.authenticated
    async def get(self, experiment_id: str) -> None:
        exp_id = self.int_path(experiment_id, "experiment id")
        limit, offset = self.page()
        self.reply(await self.call(lambda: self.service.trials(exp_id, limit=limit, offset=offset)))


class ActionHandler(_Handler):
    """``POST experiments/<id>/actions/<pause|activate|kill>``: a control request for the controller."""

    @web.authenticated
    async def post(self, experiment_id: str, action: str) -> None:
        exp_id = self.int_path(experiment_id, "experiment id")
        names = {a.value.lower(): a for a in ControlAction}
        if action not in names:
            raise web.HTTPError(400, f"unknown action {action!r}; one of {', '.join(names)}")
        self.reply(await self.call(lambda: self.service.act(exp_id, names[action])), status=202)


class TrialHandler(_Handler):
    """``GET trials/<id>``: hparams, state, metric series, checkpoints, log tail."""

    @web.authenticated
    async def get(self, trial_id: str) -> None:
        tid = self.int_path(trial_id, "trial id")
        max_points = self.int_query("max_points", self.service.default_max_points, low=2)
        tail = self.int_query("logs_tail", self.service.default_logs_tail, low=0, high=100_000)
        self.reply(await self.call(lambda: self.service.trial(tid, max_points=max_points, logs_tail=tail)))


class TrialMetricsHandler(_Handler):
    """``GET trials/<id>/metrics?kind=&max_points=``: one trial's metric series."""

    @web.authenticated
    async def get(self, trial_id: str) -> None:
        tid = self.int_path(trial_id, "trial id")
        kind = self.get_query_argument("kind", None) or None
        if kind is not None and kind not in _KINDS:
            raise web.HTTPError(
                400, f"query parameter 'kind' must be one of {', '.join(_KINDS)}, got {kind!r}"
            )
        max_points = self.optional_int_query("max_points", low=2)
        series = await self.call(lambda: self.service.trial_metrics(tid, kind=kind, max_points=max_points))
        self.reply({"trial_id": tid, "series": series})


class TrialLogsHandler(_Handler):
    """``GET trials/<id>/logs?after=&tail=``: the lines after cursor ``after`` (0: from the start), at
    most the newest ``tail``; the answer's ``cursor`` is the next ``after``."""

    @web.authenticated
    async def get(self, trial_id: str) -> None:
        tid = self.int_path(trial_id, "trial id")
        after = self.int_query("after", 0, low=0)
        tail = self.int_query("tail", self.service.default_logs_tail, low=1, high=100_000)
        self.reply(await self.call(lambda: self.service.trial_logs(tid, after=after, tail=tail)))


class ClusterHandler(_Handler):
    """``GET cluster``: the cluster the experiments run on (configured, an experiment's, or the
    master's embedded one) with workers, slots and GPUs; else the server's GPUs."""

    @web.authenticated
    async def get(self) -> None:
        base_url = str(self.base_url)
        self.reply(await self.call(lambda: self.service.cluster(base_url=base_url)))


def route_table(base_url: str) -> list[tuple[str, type[APIHandler]]]:
    """The extension's routes under ``base_url``."""
    ident = r"([^/]+)"
    routes: list[tuple[str, type[APIHandler]]] = [
        (r"/?", IndexHandler),
        (r"/experiments/?", ExperimentsHandler),
        (rf"/experiments/{ident}/?", ExperimentHandler),
        (rf"/experiments/{ident}/trials/?", TrialsHandler),
        (rf"/experiments/{ident}/actions/{ident}/?", ActionHandler),
        (rf"/trials/{ident}/?", TrialHandler),
        (rf"/trials/{ident}/metrics/?", TrialMetricsHandler),
        (rf"/trials/{ident}/logs/?", TrialLogsHandler),
        (r"/cluster/?", ClusterHandler),
    ]
    prefix = url_path_join(base_url, API_PREFIX)
    return [(prefix + pattern, handler) for pattern, handler in routes]
