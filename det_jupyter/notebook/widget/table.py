"""The trial table: an anywidget that sorts by its headers and picks a trial by its rows.

Python builds what the table shows (:func:`table_payload`, pure: rows in the model's sort order, one
column per hyperparameter, the header of the sorted column with ▲ when its *values* go up the page
and ▼ when they go down, also for the best-metric column whose "best first" order depends on
``smaller_is_better``). The browser only draws it and sends back clicks: a header click sets
:attr:`sort_by` / :attr:`descending`, a row click sets :attr:`selected` (the trial id, -1 for none;
clicking the picked row again clears it). Cells are set as text, never as HTML.

Example:
    >>> columns, rows = table_payload(model, "best", False)      # doctest: +SKIP
    >>> columns[-2]["label"]                                      # doctest: +SKIP
    'best val_loss ▲'
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

from det_jupyter.notebook.widget.html import format_value, state_css
from det_jupyter.notebook.widget.model import SORT_KEYS, WidgetModel
from det_jupyter.server.palette import BEST_MARK

__all__ = ["TABLE_CSS", "TABLE_ESM", "table_payload", "trial_table"]

TABLE_ESM = r"""
export default {
  render({ model, el }) {
    el.classList.add('det-jupyter-table');
    const draw = () => {
      const columns = model.get('columns');
      const selected = model.get('selected');
      const table = document.createElement('table');
      const head = table.createTHead().insertRow();
      for (const column of columns) {
        const th = document.createElement('th');
        th.textContent = column.label;
        th.dataset.key = column.key;
        if (column.sortable) {
          th.classList.add('det-sortable');
          th.title = 'sort by ' + column.key;
          th.addEventListener('click', () => {
            if (model.get('sort_by') === column.key) model.set('descending', !model.get('descending'));
            else { model.set('sort_by', column.key); model.set('descending', false); }
            model.save_changes();
          });
        }
        head.appendChild(th);
      }
      const body = table.createTBody();
      for (const row of model.get('rows')) {
        const tr = body.insertRow();
        tr.dataset.trial = String(row.id);
        if (row.best) tr.classList.add('det-best');
        if (row.id === selected) tr.classList.add('det-selected');
        row.cells.forEach((text, i) => {
          const td = tr.insertCell();
          td.textContent = text;
          if (columns[i] && columns[i].key === 'state') td.style.color = row.color;
        });
        tr.addEventListener('click', () => {
          model.set('selected', model.get('selected') === row.id ? -1 : row.id);
          model.save_changes();
        });
      }
      el.replaceChildren(table);
    };
    draw();
    model.on('change:rows', draw);
    model.on('change:columns', draw);
    model.on('change:selected', draw);
    return () => {
      model.off('change:rows', draw);
      model.off('change:columns', draw);
      model.off('change:selected', draw);
    };
  },
};
"""

TABLE_CSS = """
.det-jupyter-table { max-height: 420px; overflow: auto; }
.det-jupyter-table table { border-collapse: collapse; font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, #222); }
.det-jupyter-table th, .det-jupyter-table td { padding: 2px 8px; text-align: left; white-space: nowrap;
  border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.det-jupyter-table th { position: sticky; top: 0; background: var(--jp-layout-color1, #fff); }
.det-jupyter-table th.det-sortable { cursor: pointer; user-select: none; }
.det-jupyter-table th.det-sortable:hover { color: var(--jp-brand-color1, #1976d2); }
.det-jupyter-table tbody tr { cursor: pointer; }
.det-jupyter-table tbody tr:hover { background: var(--jp-layout-color2, #eee); }
.det-jupyter-table tr.det-best { font-weight: 700; }
.det-jupyter-table tr.det-selected { background: var(--jp-brand-color3, #bbdefb);
  outline: 1px solid var(--jp-brand-color1, #1976d2); }
"""


def table_payload(
    model: WidgetModel, sort_by: str, descending: bool, *, only: set[int] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(columns, rows)`` of the trial table as the browser draws them (see the module docstring).

    ``only``: the trial ids to list (those brushed on the parallel coordinates); ``None``: all.
    """
    rows = [r for r in model.table_rows(sort_by, descending) if only is None or r.id in only]
    names = list(dict.fromkeys(k for t in model.trials for k in model.flat_hparams(t.id)))
    cached = _HP_CELLS.setdefault(model, {})
    if cached.get(None) != names:  # the hyperparameter columns changed: every row's cells with them
        cached.clear()
        cached[None] = names
    arrow = " ▲" if model.values_ascending(sort_by, descending) else " ▼"
    labels = {"id": "trial", "state": "state", "steps": model.time_metric,
              "best": f"best {model.validation_metric}", "restarts": "restarts"}  # fmt: skip
    columns: list[dict[str, Any]] = [{"key": "id", "label": labels["id"], "sortable": True}]
    columns += [{"key": f"hp:{n}", "label": n, "sortable": False} for n in names]
    columns += [{"key": k, "label": labels[k], "sortable": True} for k in SORT_KEYS if k != "id"]
    for c in columns:
        if c["key"] == sort_by:
            c["label"] = f"{c['label']}{arrow}"
    out = []
    for r in rows:
        hp_cells = cached.get(r.id)
        if hp_cells is None:  # a trial's hyperparameters never change: format them once
            flat = model.flat_hparams(r.id)
            hp_cells = cached[r.id] = [format_value(flat.get(n)) for n in names]
        cells = [f"{r.id} {BEST_MARK}" if r.is_best else str(r.id), *hp_cells]
        cells += [r.state.value, str(r.steps), format_value(r.best), str(r.restarts)]
        out.append(
            {
                "id": r.id,
                "cells": cells,
                "best": r.is_best,
                "color": state_css(r.state.value),
            }
        )
    return columns, out


_HP_CELLS: weakref.WeakKeyDictionary[WidgetModel, dict[Any, Any]] = weakref.WeakKeyDictionary()
"""Per model: the hyperparameter columns (key ``None``) and each trial's formatted cells (1,000 trials'
cells formatted anew per redraw were most of the table's time)."""


@functools.cache
def _table_class() -> type:
    import anywidget
    import traitlets

    class TrialTable(anywidget.AnyWidget):  # type: ignore[misc]
        """The trial table (see the module docstring)."""

        _esm = TABLE_ESM
        _css = TABLE_CSS
        columns: Any = traitlets.List().tag(sync=True)
        rows: Any = traitlets.List().tag(sync=True)
        sort_by = traitlets.Unicode("id").tag(sync=True)
        descending = traitlets.Bool(False).tag(sync=True)
        selected = traitlets.Int(-1).tag(sync=True)

    return TrialTable


def trial_table() -> Any:
    """A new, empty trial table widget (``columns`` / ``rows`` come from :func:`table_payload`)."""
    return _table_class()()
