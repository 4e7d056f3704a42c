"""The Jupyter server extension: an authenticated REST API over the det_jupyter store.

Installing the package enables it (``etc/jupyter/jupyter_server_config.d/det_jupyter.json``); the
JupyterLab sidebar (``labextension/``) is its client. Routes and answers: :mod:`.handlers`; the wire
format: :mod:`.serializers`; configuration (store path, Dask scheduler): :class:`.ExperimentService`.

Example:
    $ jupyter server extension list        # det_jupyter.server enabled
    $ curl -H "Authorization: token $T" http://127.0.0.1:8888/det-jupyter/api/experiments
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from det_jupyter.server.service import ExperimentService

__all__ = ["ExperimentService"]


def __getattr__(name: str) -> Any:
    # lazy: a kernel importing det_jupyter.server.palette does not load the service (traitlets, Dask)
    if name == "ExperimentService":
        from det_jupyter.server.service import ExperimentService

        return ExperimentService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where Jupyter Server finds this extension."""
    return [{"module": "det_jupyter.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The built sidebar, for ``jupyter labextension develop`` (wheels ship it as shared data)."""
    return [{"src": "../labextension", "dest": "det-jupyter"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the REST handlers and the service (configured by ``c.ExperimentService.*``)."""
    from det_jupyter.server.handlers import route_table
    from det_jupyter.server.service import SETTINGS_KEY, ExperimentService

    web_app = server_app.web_app
    service = ExperimentService(parent=server_app, log=server_app.log)
    web_app.settings[SETTINGS_KEY] = service
    web_app.add_handlers(".*$", route_table(web_app.settings["base_url"]))
    server_app.log.info(
        "det_jupyter: REST API at %sdet-jupyter/api/ over %s", web_app.settings["base_url"], service.path
    )
    service.maybe_revive(force=True)  # a background thread: experiments a dead master left get a new one


def _unload_jupyter_server_extension(server_app: Any) -> None:
    """Close the service's Dask clients and threads, so the server shuts down without hanging."""
    from det_jupyter.server.service import SETTINGS_KEY, ExperimentService

    service = server_app.web_app.settings.get(SETTINGS_KEY)
    if isinstance(service, ExperimentService):
        service.close()
