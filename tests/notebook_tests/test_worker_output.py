"""Worker output stays out of the user's cells: a notebook executed by a real kernel (nbclient).

Issue #13: Dask workers' TensorFlow stderr lines appeared as red text above the widget and in the
``exp.wait()`` cell. Neither mode lets it through now: the embedded cluster's workers write their own
output to ``<home>/logs/workers.log`` (det_jupyter/worker/quiet.py). A trial's prints belong in its log (``%det logs``, the widget's trial detail);
what its worker process writes straight to file descriptors 1 and 2 (TensorFlow's C++ logging does)
must not reach the notebook either. The trial here does both, in master mode (the default: workers
belong to the home's master process) and with ``master="inprocess"`` (the embedded cluster's workers
are children of the kernel, whose fds 1 and 2 ipykernel forwards to the cell that runs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from det_jupyter.store import Store

pytestmark = pytest.mark.slow

MARK = "WORKER-NOISE-7f3a"

TRAIN = f'''\
import os, sys

def train(ctx):
    os.write(2, b"{MARK} fd2 from the worker process\\n")   # what TensorFlow's C++ logging does
    os.write(1, b"{MARK} fd1 from the worker process\\n")
    for step in range(1, ctx.searcher.max_time + 1):
        print(f"trial print step {{step}}")
        print(f"trial stderr step {{step}}", file=sys.stderr)
        ctx.report_validation_metrics(step, {{"val_loss": 1.0 / step}})
'''

SUBMIT = """\
import det_jupyter
config = {{"name": "noise", "searcher": {{"name": "single", "metric": "val_loss", "max_time": 3,
          "time_metric": "batches"}}, "hyperparameters": {{}}}}
exp = det_jupyter.create_experiment(config, train{extra})
exp
"""


def _run(tmp_path: Path, extra: str) -> tuple[Any, Store]:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(TRAIN),
        nbformat.v4.new_code_cell(SUBMIT.format(extra=extra)),
        nbformat.v4.new_code_cell("exp.wait()\nprint('state', exp.state.value)"),
        nbformat.v4.new_code_cell("import time; time.sleep(1.0)"),  # late worker output would land here
    ]
    home = tmp_path / "home"
    saved = dict(os.environ)
    os.environ.update(DET_JUPYTER_HOME=str(home))
    # ipykernel forwards what is written to its fds 1 and 2 (and so its children's) to the running
    # cell, as for a user, except under pytest: it checks this variable. Show it as a user sees it.
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:  # the kernel inherits this process's environment
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb, Store(home / "det_jupyter.db")


def _outputs(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(str(out.get("text", "")))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


@pytest.mark.parametrize(
    "extra",
    ["", ', master="inprocess"'],
    ids=["master", "inprocess"],
)
def test_worker_output_goes_to_trial_logs_not_the_notebook(tmp_path: Path, extra: str) -> None:
    nb, store = _run(tmp_path, extra)
    text = _outputs(nb)
    assert "state COMPLETED" in text
    assert MARK not in text, [line for line in text.splitlines() if MARK in line]
    assert "trial print step" not in text and "trial stderr step" not in text
    (exp,) = store.list_experiments()
    (trial,) = store.list_trials(exp.id)
    log = "\n".join(row.line for row in store.logs(trial.id))
    assert "trial print step 3" in log and "trial stderr step 3" in log
    if extra:  # in-process: the kernel's embedded workers kept their own output in the home's log
        assert MARK in (tmp_path / "home" / "logs" / "workers.log").read_text()
