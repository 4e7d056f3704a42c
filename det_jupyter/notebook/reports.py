"""Read-only views of the store for the ``%det`` magics: each a :class:`Report` with text and HTML.

A notebook shows the HTML, a terminal IPython (and a test) the text. They only read the store (and,
for the cluster, :func:`~det_jupyter.engine.cluster.cluster_summary`), so they work in any process.

Example:
    >>> print(Report("hello", "<b>hello</b>"))
    hello
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from typing import Any

from det_jupyter.config import ExperimentConfig
from det_jupyter.config.redact import redact_config
from det_jupyter.config.searcher import SearcherConfig
from det_jupyter.errors import ConfigError
from det_jupyter.notebook.widget.html import errors_html, format_hparams, format_value, state_css
from det_jupyter.searcher.ranking import best_of, best_value
from det_jupyter.server.palette import format_duration, format_percent
from det_jupyter.store import ExperimentRow, Store
from det_jupyter.store.progress import experiment_progress

__all__ = [
    "Report",
    "cluster_report",
    "experiment_description",
    "experiment_list",
    "trial_logs",
    "trial_table",
]

_TABLE = 'style="border-collapse:collapse"'


@dataclass(frozen=True)
class Report:
    """Text for terminals, HTML for notebooks."""

    text: str
    html: str

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return self.html


_CELL = 'style="padding:2px 8px;text-align:left"'


def _table(head: list[str], rows: list[list[str]], html_rows: list[list[str]] | None = None) -> Report:
    """A text table (columns padded) and an HTML table (``html_rows``: cells already in HTML)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    cells = html_rows if html_rows is not None else [[html.escape(c) for c in r] for r in rows]
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in r) + "</tr>" for r in cells)
    head_html = "".join(f"<th {_CELL}>{html.escape(h)}</th>" for h in head)
    return Report("\n".join(lines), f"<table {_TABLE}><tr>{head_html}</tr>{body}</table>")


def _colored(state: str) -> str:
    return f'<span style="color:{state_css(state)}">{html.escape(state)}</span>'


def _searcher(e: ExperimentRow) -> SearcherConfig | None:
    """The experiment's searcher section, or ``None`` for a config this version cannot read."""
    try:
        return ExperimentConfig.from_stored(e.config).searcher
    except ConfigError:
        return None  # one unreadable experiment must not hide the others from %det list


def experiment_list(store: Store) -> Report:
    """All experiments, newest first: id, name, state, progress, trials, searcher, best metric."""
    rows = []
    for e in store.list_experiments():
        counts = store.trial_counts(e.id)
        searcher = _searcher(e)
        trials = store.list_trials(e.id)
        best = (
            best_value(
                (t.best_validation for t in trials),
                smaller_is_better=searcher.smaller_is_better,
            )
            if searcher is not None
            else None
        )
        rows.append(
            [
                str(e.id),
                e.name,
                e.state.value,
                format_percent(experiment_progress(e, trials)),
                str(sum(counts.values())),
                f"{searcher.name} ({searcher.metric})" if searcher is not None else "? (?)",
                format_value(best),
            ]
        )
    if not rows:
        return Report("no experiments yet", "<i>no experiments yet</i>")
    html_rows = [[_colored(c) if i == 2 else html.escape(c) for i, c in enumerate(r)] for r in rows]
    return _table(["id", "name", "state", "progress", "trials", "searcher", "best"], rows, html_rows)


def experiment_description(store: Store, experiment_id: int) -> Report:
    """State, timing, searcher, trial counts, the best trial and how to load it, failures, the config."""
    e = store.get_experiment(experiment_id)
    trials = store.list_trials(experiment_id)
    searcher = ExperimentConfig.from_stored(e.config).searcher
    smaller = searcher.smaller_is_better
    best = best_of(trials, lambda t: t.best_validation, smaller_is_better=smaller, tiebreak=lambda t: t.id)
    counts = {s.value: n for s, n in store.trial_counts(experiment_id).items()}
    elapsed = (e.ended_at or time.time()) - e.created_at
    lines = [
        f"experiment {e.id} {e.name!r}: {e.state.value}, progress {format_percent(experiment_progress(e, trials))}, elapsed {format_duration(elapsed)}",
        f"searcher: {searcher.name} on {searcher.metric} ({'smaller' if smaller else 'larger'} is better)",
        "trials: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none yet"),
    ]
    if e.dashboard_link:
        lines.append(f"Dask dashboard: {e.dashboard_link}")
    if e.error:
        lines.append(f"error: {e.error}")
    if best is not None:
        lines.append(
            f"best trial {best.id}: {format_hparams(best.hparams)}, {searcher.metric} = "
            f"{format_value(best.best_validation)}"
        )
        if store.checkpoints(experiment_id=experiment_id):
            lines.append(f"load it: model = det_jupyter.get_experiment({e.id}).best_checkpoint().load()")
    failed = [(t.id, t.state, t.restarts, t.error) for t in trials if t.error]
    if failed:
        lines.append(
            f"failures: trials {', '.join(str(f[0]) for f in failed)} (see `%det logs {e.id} TRIAL`)"
        )
    config = json.dumps(redact_config(e.config), indent=2)  # secrets shown as ********
    text = "\n".join([*lines, "config:", config])
    body = "<br>".join(html.escape(line) for line in lines)
    extra = (
        errors_html(failed) + f"<details><summary>config</summary><pre>{html.escape(config)}</pre></details>"
    )
    return Report(text, f"<div>{body}</div>{extra}")


def trial_table(store: Store, experiment_id: int) -> Report:
    """One row per trial: id, state, hparams, steps, best metric, restarts, worker."""
    store.get_experiment(experiment_id)  # NotFoundError for a bad id
    rows = [
        [
            str(t.id),
            t.state.value,
            format_hparams(t.hparams),
            str(t.steps_completed),
            format_value(t.best_validation),
            str(t.restarts),
            t.worker or "-",
        ]
        for t in store.list_trials(experiment_id)
    ]
    if not rows:
        return Report(f"experiment {experiment_id} has no trials yet", "<i>no trials yet</i>")
    return _table(["trial", "state", "hparams", "steps", "best", "restarts", "worker"], rows)


def trial_logs(
    store: Store, experiment_id: int, trial_id: int | None = None, tail: int | None = None
) -> Report:
    """The output of one trial (or of every trial of the experiment), ``[trial N]``-prefixed."""
    trials = [t.id for t in store.list_trials(experiment_id)]
    if trial_id is not None and trial_id not in trials:
        from det_jupyter.errors import NotFoundError

        raise NotFoundError(
            f"trial {trial_id} is not a trial of experiment {experiment_id} (its trials: {trials})"
        )
    lines = [
        f"[trial {tid}] {row.line}" for tid in ([trial_id] if trial_id is not None else trials)
        for row in store.logs(tid, tail=tail)
    ]  # fmt: skip
    text = "\n".join(lines) if lines else "no output yet"
    return Report(text, f'<pre style="white-space:pre-wrap">{html.escape(text)}</pre>')


def cluster_report(summary: dict[str, Any]) -> Report:
    """Workers with their slots and GPUs (NVML name, memory, utilisation), totals, the dashboard link.

    A ``master`` entry (``pid``, ``uptime``, ``experiments``, ``log``) adds a line on the home's master.
    """
    rows = []
    for w in sorted(summary.get("workers", []), key=lambda w: str(w.get("name"))):
        resources = ", ".join(f"{k}={v:g}" for k, v in sorted((w.get("resources") or {}).items())) or "-"
        gpus = "; ".join(
            f"{g['name']} ({g['memory_used_mb'] / 1024:.1f}/{g['memory_total_mb'] / 1024:.1f} GiB, "
            f"{g['utilization_percent']:.0f}% busy)"
            for g in w.get("gpus", [])
        ) or "-"  # fmt: skip
        rows.append([str(w.get("name")), str(w.get("address")), str(w.get("nthreads")), resources, gpus])
    slots = summary.get("slots", {})
    link = summary.get("dashboard_link")
    totals = (
        f"scheduler {summary.get('scheduler')}: {len(rows)} worker(s), "
        f"{slots.get('GPU', 0):g} GPU slot(s), {slots.get('CPU', 0):g} CPU slot(s)"
    )
    table = _table(["worker", "address", "threads", "slots", "GPUs"], rows) if rows else Report("", "")
    master = summary.get("master")
    if master:
        runs = ", ".join(map(str, master.get("experiments", []))) or "none"
        totals = (
            f"master pid {master['pid']} (up {master.get('uptime', 0):.0f}s, experiments: {runs}, "
            f"log {master.get('log')}); {totals}"
        )
    text = "\n".join([totals, f"dashboard: {link or 'none'}", table.text]).rstrip()
    link_html = (
        f'<a href="{html.escape(link, quote=True)}" target="_blank" rel="noopener">Dask dashboard</a>'
        if link
        else "no dashboard"
    )
    return Report(text, f"<div>{html.escape(totals)} · {link_html}</div>{table.html}")
