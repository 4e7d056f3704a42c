"""HTML fragments of the experiment widget: header, trial table, errors, the load-and-predict hint.

Pure functions of a :class:`~det_jupyter.notebook.widget.model.WidgetModel`, so they are tested without a
browser and reused by the ``%det`` magics. Colours come from JupyterLab's CSS variables, with
fallbacks for classic notebooks and static renders.

Colours and number formats are the sidebar's (:mod:`det_jupyter.server.palette`).

Example:
    >>> format_value(0.000012345)
    '1.23e-5'
"""

from __future__ import annotations

import html
from typing import Any

from det_jupyter.notebook.widget.model import TableRow, WidgetModel
from det_jupyter.server.palette import (
    BEST_MARK,
    NO_VALUE,
    STATE_COLORS,
    format_duration,
    format_metric,
    format_percent,
)
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import CheckpointRow, LogRow

__all__ = [
    "errors_html",
    "format_hparams",
    "format_value",
    "header_html",
    "load_code",
    "load_hint_html",
    "progress_text",
    "state_css",
    "trial_detail_html",
    "trial_table_html",
]

_TABLE_STYLE = "border-collapse:collapse;font-size:var(--jp-ui-font-size1,13px)"
_CELL = "padding:2px 8px;border-bottom:1px solid var(--jp-border-color2,#ddd);text-align:left"
_MAX_TRACEBACK = 6000


def state_css(state: str) -> str:
    """The CSS colour of a state: the sidebar's JupyterLab variable (:mod:`det_jupyter.server.palette`),
    falling back to its light hex where the variable is missing (classic notebook, static HTML).

    >>> state_css("COMPLETED")
    'var(--jp-success-color1, #388e3c)'
    """
    color = STATE_COLORS.get(state)
    if color is None:
        return "inherit"
    return f"{color['css'][:-1]}, {color['light']})"


def format_value(value: Any) -> str:
    """A metric or hyperparameter as every view writes it: numbers by :func:`~det_jupyter.server.palette.format_metric`
    (4 significant digits), integers and text as they are, ``–`` for none.

    >>> format_value(1 / 12), format_value(32), format_value("relu"), format_value(None)
    ('0.08333', '32', 'relu', '–')
    """
    if value is None:
        return NO_VALUE
    if isinstance(value, float):
        return format_metric(value)
    return str(value)


def format_hparams(hparams: dict[str, Any]) -> str:
    """``lr=0.001, layers=2`` (nested hyperparameters as dotted keys)."""
    from det_jupyter.notebook.widget.model import flatten_hparams

    return ", ".join(f"{k}={format_value(v)}" for k, v in flatten_hparams(hparams).items())


def _state(state: ExperimentState | TrialState) -> str:
    color = state_css(state.value)
    return f'<span style="color:{color};font-weight:600">{state.value}</span>'


def header_html(model: WidgetModel, now: float | None = None) -> str:
    """Name, id, state, searcher, duration and ETA, trials (created of planned, each outcome apart), dashboard."""
    exp = model.experiment
    c = model.counts()
    searcher = model.searcher
    direction = "smaller is better" if model.smaller_is_better else "larger is better"
    timing = f"duration {format_duration(model.elapsed(now))}"
    eta = model.eta(now)
    if eta is not None:
        timing += f", ETA {format_duration(eta)}"
    parts = [
        f"<b>{html.escape(exp.name)}</b>",
        f"experiment {exp.id}",
        _state(exp.state),
        f"{html.escape(searcher.name)} on <code>{html.escape(model.validation_metric)}</code> ({direction})",
        timing,
    ]
    trials = f"trials: {c['total']} of {c['planned']} created"
    outcomes = [("completed", "completed"), ("stopped", "stopped early"), ("canceled", "canceled"),
                ("errored", "errored"), ("running", "running"), ("queued", "queued"), ("paused", "paused")]  # fmt: skip
    shown = [f"{c[key]} {label}" for key, label in outcomes if c[key] or key in ("completed", "running")]
    parts.append(f"{trials} ({', '.join(shown)})")
    if exp.dashboard_link:
        link = html.escape(exp.dashboard_link, quote=True)
        parts.append(f'<a href="{link}" target="_blank" rel="noopener">Dask dashboard</a>')
    out = " · ".join(parts)
    if exp.description:
        out += f'<div style="color:var(--jp-ui-font-color2,#666)">{html.escape(exp.description)}</div>'
    if exp.error:
        color = state_css("ERROR")
        out += f'<div style="color:{color}">{html.escape(exp.error)}</div>'
    return f"<div>{out}</div>"


def progress_text(model: WidgetModel) -> str:
    """What the progress bar means, beside it: ``37% of 4 × 300 batches``.

    Example:
        >>> progress_text(model)            # doctest: +SKIP
        '10% of 1 × 300 batches'
    """
    pct = format_percent(model.progress())
    planned, max_time = model.counts()["planned"], model.searcher.max_time
    if max_time:
        return f"{pct} of {planned} × {max_time} {model.time_metric}"
    return f"{pct} of {planned} trial(s)"


def trial_table_html(rows: list[TableRow], metric: str) -> str:
    """The trial table; the best trial's row is bold and starred."""
    head = ["trial", "hparams", "state", "steps", f"best {metric}", "restarts"]
    lines = [
        f'<table style="{_TABLE_STYLE}"><thead><tr>'
        + "".join(f'<th style="{_CELL}">{html.escape(h)}</th>' for h in head)
        + "</tr></thead><tbody>"
    ]
    for r in rows:
        weight = "font-weight:700;" if r.is_best else ""
        star = f" {BEST_MARK}" if r.is_best else ""
        cells = [
            f"{r.id}{star}",
            html.escape(format_hparams(r.hparams)),
            _state(r.state),
            str(r.steps),
            format_value(r.best),
            str(r.restarts),
        ]
        lines.append(
            f'<tr style="{weight}">' + "".join(f'<td style="{_CELL}">{c}</td>' for c in cells) + "</tr>"
        )
    lines.append("</tbody></table>")
    return "".join(lines)


def errors_html(errors: list[tuple[int, TrialState, int, str]]) -> str:
    """Each failed trial's last traceback, open for trials in ERROR, folded for restarted ones."""
    blocks = []
    for trial_id, state, restarts, traceback in errors:
        failed = state == TrialState.ERROR
        text = traceback if len(traceback) <= _MAX_TRACEBACK else "…" + traceback[-_MAX_TRACEBACK:]
        summary = (
            f"trial {trial_id} failed (ERROR after {restarts} restart(s))"
            if failed
            else f"trial {trial_id} failed and was restarted ({restarts} restart(s) so far); last error"
        )
        color = state_css("ERROR" if failed else "PAUSED")
        blocks.append(
            f'<details{" open" if failed else ""}><summary style="color:{color}">{html.escape(summary)}</summary>'
            f'<pre style="white-space:pre-wrap;font-size:12px">{html.escape(text)}</pre></details>'
        )
    return "".join(blocks)


def load_hint_html(model: WidgetModel, has_checkpoint: bool) -> str:
    """After the experiment: the best trial and the line that loads its model for predictions."""
    best = model.best_trial_id
    if best is None:
        return ""
    trial = next(t for t in model.trials if t.id == best)
    text = (
        f"Best trial <b>{best}</b>: {html.escape(format_hparams(trial.hparams))}, "
        f"{html.escape(model.validation_metric)} = {format_value(trial.best_validation)}."
    )
    if has_checkpoint:
        text += (
            " Load it and predict: <code>model = det_jupyter.get_experiment("
            f"{model.experiment_id}).best_checkpoint().load()</code>"
        )
    return f"<div>{text}</div>"


def trial_detail_html(
    model: WidgetModel, trial_id: int, checkpoints: list[CheckpointRow], logs: list[LogRow]
) -> str:
    """One trial: state and numbers, hyperparameters, checkpoints with the code that loads each, its log tail."""
    trial = model.trial(trial_id)
    if trial is None:
        return f"<i>trial {trial_id} is not a trial of experiment {model.experiment_id}</i>"
    from det_jupyter.notebook.widget.model import flatten_hparams

    facts = [
        f"<b>trial {trial.id}</b>{f' {BEST_MARK} best' if trial.id == model.best_trial_id else ''}",
        _state(trial.state),
        f"{trial.steps_completed} {html.escape(model.time_metric)}",
        f"best {html.escape(model.validation_metric)} {format_value(trial.best_validation)}",
        f"restarts {trial.restarts}",
    ]
    if trial.worker:
        facts.append(f"worker {html.escape(trial.worker)}")
    hp_rows = "".join(
        f'<tr><td style="{_CELL}">{html.escape(k)}</td><td style="{_CELL}">{html.escape(format_value(v))}</td></tr>'
        for k, v in flatten_hparams(trial.hparams).items()
    )
    kept = [c for c in checkpoints if c.state == "COMPLETED"]
    ckpt_rows = "".join(
        f'<tr><td style="{_CELL}"><code>{html.escape(c.uuid)}</code></td><td style="{_CELL}">{c.steps}</td>'
        f'<td style="{_CELL}">{format_value(c.metric)}</td><td style="{_CELL}"><code>'
        + html.escape(load_code(model.experiment_id, c.uuid))
        + "</code></td></tr>"
        for c in kept
    )
    ckpts = (
        f'<table style="{_TABLE_STYLE}"><tr><th style="{_CELL}">checkpoint</th><th style="{_CELL}">steps</th>'
        f'<th style="{_CELL}">metric</th><th style="{_CELL}">load this one</th></tr>{ckpt_rows}</table>'
        if kept
        else "<i>no checkpoint yet</i>"
    )
    log_text = "\n".join(r.line for r in logs) or "no output yet"
    return (
        f'<div class="det-trial-detail" data-trial="{trial.id}">{" · ".join(facts)}'
        f'<div style="display:flex;flex-wrap:wrap;gap:16px;margin-top:4px">'
        f'<div><b>hyperparameters</b><table style="{_TABLE_STYLE}">{hp_rows}</table></div>'
        f"<div><b>checkpoints</b>{ckpts}</div></div>"
        f"<b>log</b> (last {len(logs)} lines)"
        f'<pre class="det-trial-log" style="white-space:pre-wrap;max-height:240px;overflow:auto;font-size:12px;'
        f'background:var(--jp-layout-color2,#f5f5f5);padding:4px">{html.escape(log_text)}</pre></div>'
    )


def load_code(experiment_id: int, uuid: str) -> str:
    """The line that loads one checkpoint as a ready model.

    Example:
        >>> load_code(3, "abc")
        'model = next(c for c in det_jupyter.get_experiment(3).checkpoints() if c.uuid == "abc").load()'
    """
    return (
        f"model = next(c for c in det_jupyter.get_experiment({experiment_id}).checkpoints() "
        f'if c.uuid == "{uuid}").load()'
    )
