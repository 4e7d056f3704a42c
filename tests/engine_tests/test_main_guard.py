"""A script that starts the embedded cluster at module level, without ``if __name__ == "__main__":``.

Dask starts its worker processes with multiprocessing's ``spawn``, which re-runs the script's
module-level code in every worker; multiprocessing then prints its "bootstrapping phase" traceback
once per worker. det_jupyter refuses in the parent, before starting anything, with one ClusterError
that names the line and the fix. In master mode (the default) no guard is needed: the master owns the
cluster. Real subprocess scripts, each with its own DET_JUPYTER_HOME; every master is stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from det_jupyter.engine import cluster as cluster_module
from det_jupyter.errors import ClusterError
from det_jupyter.master import read_info
from tests.master_tests.helpers import stop_all_masters

BOOTSTRAP = "before the current process has finished its bootstrapping phase"
GUARD = 'if __name__ == "__main__":'


def _run(script: Path, home: Path, *, mode: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DET_JUPYTER_HOME": str(home), "DET_JUPYTER_MASTER": mode}
    env["DET_JUPYTER_MASTER_WORKERS"] = "1"
    env.pop("DET_JUPYTER_CLUSTER", None)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, env=env,
        cwd=script.parent,
    )  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh home; a master the script started there is stopped (or killed) afterwards."""
    path = tmp_path / "home"
    try:
        yield path
    finally:
        stop_all_masters(path)


def test_unguarded_script_gets_one_message_with_the_fix(tmp_path: Path, home: Path) -> None:
    script = tmp_path / "train_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import det_jupyter

            client = det_jupyter.cluster(n_workers=2, gpus=[], dashboard=False)
            print("the cluster started")
            """
        )
    )
    done = _run(script, home, mode="inprocess")
    assert done.returncode != 0
    assert "the cluster started" not in done.stdout
    assert done.stderr.count("det_jupyter.errors.ClusterError: ") == 1
    assert GUARD in done.stderr and "master mode" in done.stderr
    assert f"{script} (line 4: `client = det_jupyter.cluster(" in done.stderr
    assert done.stderr.count(BOOTSTRAP) <= 1  # none in fact: no worker process was started
    assert done.stderr.count("Traceback") == 1


def test_a_spawned_worker_reimporting_the_script_exits_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    # what a worker would do if the parent's check missed (e.g. a thread started at module level)
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(SystemExit):
        cluster_module.local_cluster(n_workers=1, gpus=[], dashboard=False)


@pytest.mark.parametrize(
    ("source", "line", "guarded"),
    [
        ("import x\nx.cluster()\n", 2, False),
        ('if __name__ == "__main__":\n    x = 1\n    main()\n', 3, True),
        ("if '__main__' == __name__:\n    main(\n        1)\n", 3, True),
        ('if __name__ == "__main__":\n    pass\nelse:\n    main()\n', 4, False),
        ('def f():\n    pass\nif __name__ == "__main__":\n    f()\nf()\n', 5, False),
        ("def broken(:\n", 1, True),  # unparsable: never refuse on a guess
    ],
)
def test_guard_detection(tmp_path: Path, source: str, line: int, guarded: bool) -> None:
    path = tmp_path / "s.py"
    path.write_text(source)
    assert cluster_module._guarded(str(path), line) is guarded


def test_guarded_caller_in_this_process_is_not_refused() -> None:
    # pytest's own __main__ runs under its guard (or is no script): starting clusters here is allowed
    where = cluster_module._module_level_main_call(sys._getframe(0))
    assert where is None or cluster_module._guarded(*where)
    cluster_module._refuse_unguarded_main()


@pytest.mark.slow
def test_unguarded_script_in_master_mode_submits_and_completes(tmp_path: Path, home: Path) -> None:
    script = tmp_path / "submit_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import det_jupyter

            def train(ctx):
                for step in range(1, ctx.searcher.max_time + 1):
                    ctx.report_validation_metrics(step, {"val_loss": 1.0 / step})

            config = {
                "name": "no-guard",
                "searcher": {"name": "random", "metric": "val_loss", "max_trials": 1, "max_time": 2,
                             "time_metric": "batches"},
                "hyperparameters": {"x": {"type": "double", "minval": 0, "maxval": 1}},
            }
            exp = det_jupyter.create_experiment(config, train)
            print("final state", exp.wait(timeout=120).value)
            """
        )
    )
    done = _run(script, home, mode="process")
    assert done.returncode == 0, done.stderr
    assert "final state COMPLETED" in done.stdout
    assert BOOTSTRAP not in done.stderr and ClusterError.__name__ not in done.stderr
    assert read_info(home) is not None  # the master ran it (stopped by the fixture)
