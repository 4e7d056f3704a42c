"""The ASHA rungs view: which trials were promoted or stopped at which rung, and why.

ASHA (``adaptive_asha``, ``async_halving``; :mod:`det_jupyter.searcher.asha`) judges a trial each time
it reaches a rung's training length: with ``n`` metrics in the rung, the trial goes on while fewer
than ``max(int(n / divisor), 1)`` are strictly better, else it is stopped. The searcher's state is in
the store (``Store.get_searcher_state``); :func:`asha_rungs` rebuilds the searcher from the stored
config, loads that state and reads its rungs, so the view shows what the searcher decided, not a guess.

Example:
    >>> rungs = asha_rungs(model)          # doctest: +SKIP
    >>> print(rungs_html(rungs, model.validation_metric, model.time_metric))  # doctest: +SKIP
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from det_jupyter.config.names import ASHA_SEARCHERS
from det_jupyter.notebook.widget.html import format_value, state_css
from det_jupyter.notebook.widget.model import WidgetModel
from det_jupyter.server.palette import BEST_MARK
from det_jupyter.states import TrialState

__all__ = ["RungEntry", "RungView", "asha_rungs", "rungs_html"]


@dataclass(frozen=True)
class RungEntry:
    """One trial's record at one rung: its metric, its rank there and what happened to it."""

    trial_id: int
    metric: float | None
    rank: int
    """1 = best in the rung."""
    outcome: str
    """``promoted`` (went on to the next rung), ``stopped`` (ASHA stopped it here), ``waiting``
    (judged, continues towards the next rung), ``top`` (reached the last rung), ``exited`` (errored or
    was canceled before reaching this rung: recorded as the worst)."""
    why: str


@dataclass(frozen=True)
class RungView:
    """A rung of a bracket: its training length and the trials judged there, best first."""

    bracket: int
    index: int
    length: int
    keep: int
    """How many of the rung's current trials ASHA keeps going (``max(int(n / divisor), 1)``)."""
    entries: tuple[RungEntry, ...]


def asha_rungs(model: WidgetModel) -> list[RungView] | None:
    """The rungs of an ASHA experiment as its searcher holds them; ``None`` for other searchers or
    before the searcher saved its state."""
    searcher = model.searcher
    if searcher.name not in ASHA_SEARCHERS:
        return None
    state = model.store.get_searcher_state(model.experiment_id)
    if not state:
        return None
    from det_jupyter.searcher import make_searcher
    from det_jupyter.searcher.asha import EXITED_METRIC, ASHASearch

    method = make_searcher(searcher, model.config.hparam_space, model.experiment.seed)
    if not isinstance(method, ASHASearch):
        return None
    method.load_state_dict(state)
    trial_of = {t.request_id: t for t in model.trials}
    waiting = {int(k): int(v) for k, v in state.get("waiting", [])}
    out: list[RungView] = []
    for b, bracket in enumerate(method.brackets):
        rungs = method.rung_metrics(b)
        top = bracket.num_rungs - 1
        for r, rung in enumerate(rungs):
            if not rung:
                continue
            later = {rid for higher in rungs[r + 1 :] for rid, _ in higher}
            keep = max(int(len(rung) / method.divisor), 1)
            entries = []
            for rank, (rid, metric) in enumerate(rung, start=1):
                trial = trial_of.get(rid)
                if trial is None:
                    continue
                exited = abs(metric) >= EXITED_METRIC
                place = f"now {rank} of {len(rung)}"
                if exited:
                    outcome, why = "exited", f"{trial.state.value.lower()} before this rung: ranked last"
                elif r == top:
                    outcome, why = "top", f"trained to the full length ({place})"
                elif rid in later:
                    outcome, why = (
                        "promoted",
                        f"among the best 1/{method.divisor:g} when it arrived ({place})",
                    )
                elif trial.state == TrialState.STOPPED and waiting.get(rid) is None:
                    outcome = "stopped"
                    why = f"not among the best 1/{method.divisor:g} when it arrived ({place})"
                else:
                    outcome, why = "waiting", f"went on; not at the next rung yet ({place})"
                entries.append(RungEntry(trial.id, None if exited else metric, rank, outcome, why))
            out.append(RungView(b, r, bracket.rung_lengths[r], keep, tuple(entries)))
    return out


_OUTCOME_COLOR = {"promoted": "COMPLETED", "top": "COMPLETED", "stopped": "STOPPED", "exited": "ERROR",
                  "waiting": "ACTIVE"}  # fmt: skip
_CELL = "padding:2px 8px;border-bottom:1px solid var(--jp-border-color2,#ddd);text-align:left"


def rungs_html(rungs: list[RungView], metric: str, time_metric: str, best_trial_id: int | None = None) -> str:
    """The rungs as one small table per rung (bracket, length, who went on and why)."""
    if not rungs:
        return ""
    brackets = len({r.bracket for r in rungs})
    parts = [f"<div class='det-rungs'><b>ASHA rungs</b> (a trial is judged when it reaches a rung's "
             f"length; {html.escape(metric)} ranks it there)"]  # fmt: skip
    for rung in rungs:
        title = (f"{'bracket ' + str(rung.bracket + 1) + ', ' if brackets > 1 else ''}rung {rung.index + 1}: "
                 f"{rung.length} {html.escape(time_metric)}, {len(rung.entries)} trial(s), keeps {rung.keep}")  # fmt: skip
        rows = []
        for e in rung.entries:
            star = f" {BEST_MARK}" if e.trial_id == best_trial_id else ""
            color = state_css(_OUTCOME_COLOR[e.outcome])
            rows.append(
                f"<tr data-trial='{e.trial_id}'><td style='{_CELL}'>{e.trial_id}{star}</td>"
                f"<td style='{_CELL}'>{format_value(e.metric)}</td>"
                f"<td style='{_CELL};color:{color};font-weight:600'>{e.outcome}</td>"
                f"<td style='{_CELL}'>{html.escape(e.why)}</td></tr>"
            )
        parts.append(
            f"<div style='margin-top:6px'>{title}</div><table style='border-collapse:collapse'>"
            f"<tr><th style='{_CELL}'>trial</th><th style='{_CELL}'>{html.escape(metric)}</th>"
            f"<th style='{_CELL}'>outcome</th><th style='{_CELL}'>why</th></tr>{''.join(rows)}</table>"
        )
    parts.append("</div>")
    return "".join(parts)
