"""The store: one SQLite file (WAL) that is the hub of det_jupyter, and the only module that writes SQL.

Everything a person sees (widget, sidebar, CLI, :class:`~det_jupyter.experiment.Experiment`) reads it;
every control action is a request row that the experiment's controller picks up. Several processes
and threads may read and write at once: each thread gets its own connection, WAL lets readers run
beside one writer, and writers wait on a busy timeout instead of failing.

Who writes what: the controller owning an experiment writes its experiment, trial, metric,
checkpoint and log rows; anyone may add control requests; ``delete_experiment`` is for terminal
experiments only.

Example:
    >>> import tempfile, os
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "det.db"))
    >>> exp_id = store.create_experiment(name="demo", config={"searcher": {}}, entrypoint=b"", seed=1)
    >>> store.get_experiment(exp_id).state
    <ExperimentState.ACTIVE: 'ACTIVE'>
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from det_jupyter.errors import NotFoundError, StoreError
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.store.blobs import INLINE_LIMIT, BlobFiles
from det_jupyter.store.lease import LEASE_STALE, lease_is_free
from det_jupyter.store.progress import TRIAL_PROGRESS_SQL, plan_of, plan_sql_row, progress_of_done
from det_jupyter.store.results import ResultTables
from det_jupyter.store.rows import (
    ExperimentAggregate,
    ExperimentRow,
    RequestRow,
    TrialRow,
    TrialStats,
)
from det_jupyter.store.schema import (
    EXPERIMENT_COLUMNS,
    EXPERIMENT_UPDATABLE,
    TRIAL_COLUMNS,
    TRIAL_UPDATABLE,
    migrate,
)

__all__ = ["LEASE_STALE", "Store", "default_home", "lease_is_free"]


def default_home() -> Path:
    """``$DET_JUPYTER_HOME``, or ``~/.det_jupyter``: where the store and default checkpoints live."""
    return Path(os.environ.get("DET_JUPYTER_HOME") or Path.home() / ".det_jupyter").expanduser()


def _create_private(path: Path) -> None:
    """Create the store's directory (0700) and file (0600) when they are new: the configs in it are in
    clear (storage credentials included; see docs/security.md). Existing ones keep their modes."""
    if str(path) == ":memory:":
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # SQLite's -wal/-shm copy the mode
    except FileExistsError:
        return
    os.close(fd)


def _unusable(path: Path, exc: BaseException, *, from_home: bool) -> StoreError:
    """The :class:`StoreError` for a store file that cannot be created or opened, naming where it came from."""
    reason = f"{type(exc).__name__}: {exc}"
    if from_home:
        home = os.environ.get("DET_JUPYTER_HOME")
        source = f"DET_JUPYTER_HOME={home!r}" if home else "the default home ~/.det_jupyter"
        fix = "point DET_JUPYTER_HOME at a writable directory (created if missing), or pass store=PATH"
    else:
        source, fix = "the store path given", "pass store= a writable file path in a writable directory"
    return StoreError(
        f"cannot open the det_jupyter store {str(path)!r} (from {source}): {reason}. Fix: {fix}"
    )


def _smaller_is_better(config: dict[str, Any]) -> bool:
    """The searcher's direction in a stored config (the serializers' default: smaller is better)."""
    searcher = config.get("searcher") or {}
    return bool(searcher.get("smaller_is_better", True)) if isinstance(searcher, dict) else True


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Store(ResultTables):
    """The SQLite store. Thread-safe (one connection per thread); several processes may share a file.

    Args:
        path: the database file; default ``default_home() / "det_jupyter.db"``.

    Example:
        >>> import tempfile, os
        >>> store = Store(os.path.join(tempfile.mkdtemp(), "det.db"))
        >>> store.list_experiments()
        []
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_home() / "det_jupyter.db"
        self._local = threading.local()
        try:
            _create_private(self.path)
            self._migrate()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise _unusable(self.path, exc, from_home=path is None) from exc

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Store, (str(self.path),))

    # --- connections and transactions ---------------------------------------------------------

    @property
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group writes into one atomic transaction (re-entrant). The controller batches events so."""
        conn = self._conn
        if self._local.depth == 0:
            conn.execute("BEGIN IMMEDIATE")
        self._local.depth += 1
        try:
            yield conn
        except BaseException:
            self._local.depth -= 1
            if self._local.depth == 0:
                conn.execute("ROLLBACK")
            raise
        self._local.depth -= 1
        if self._local.depth == 0:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        with self.transaction():
            migrate(self._conn, self.path)

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # --- experiments ---------------------------------------------------------------------------

    def create_experiment(
        self,
        *,
        name: str,
        config: dict[str, Any],
        entrypoint: bytes,
        seed: int,
        description: str = "",
        entrypoint_name: str = "",
        load_hook: bytes | None = None,
    ) -> int:
        """Insert a new ACTIVE experiment; returns its id.

        A definition (or load hook) of at least ``store.blobs.INLINE_LIMIT`` bytes is written to a
        content-addressed file in ``blobs/`` beside the db, and the row keeps its digest.
        """
        entrypoint, entrypoint_digest = self._blob_out(entrypoint)
        hook, hook_digest = (None, None) if load_hook is None else self._blob_out(load_hook)
        cur = self._conn.execute(
            "INSERT INTO experiments (name, description, state, config, entrypoint, entrypoint_name,"
            " load_hook, seed, created_at, entrypoint_digest, load_hook_digest)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                description,
                ExperimentState.ACTIVE.value,
                json.dumps(config),
                entrypoint,
                entrypoint_name,
                hook,
                seed,
                time.time(),
                entrypoint_digest,
                hook_digest,
            ),
        )
        return int(cur.lastrowid or 0)

    def get_experiment(self, experiment_id: int) -> ExperimentRow:
        """One experiment; raises :class:`NotFoundError` for an unknown id."""
        row = self._conn.execute(
            f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?", (experiment_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"experiment {experiment_id} not found in {self.path}")
        return self._experiment(row)

    def list_experiments(self, *, limit: int | None = None, offset: int = 0) -> list[ExperimentRow]:
        """Experiments, newest first."""
        rows = self._conn.execute(
            f"SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY id DESC LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        ).fetchall()
        return [self._experiment(r) for r in rows]

    def count_experiments(self) -> int:
        """How many experiments the store holds."""
        return int(self._conn.execute("SELECT COUNT(*) FROM experiments").fetchone()[0])

    def get_entrypoint(self, experiment_id: int) -> tuple[bytes, bytes | None]:
        """The frozen (cloudpickled) model definition and optional load hook of an experiment."""
        row = self._conn.execute(
            "SELECT entrypoint, load_hook, entrypoint_digest, load_hook_digest FROM experiments WHERE id = ?",
            (experiment_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"experiment {experiment_id} not found in {self.path}")
        entrypoint = self.blobs.get(row[2]) if row[2] else bytes(row[0])
        hook = self.blobs.get(row[3]) if row[3] else None if row[1] is None else bytes(row[1])
        return entrypoint, hook

    @property
    def blobs(self) -> BlobFiles:
        """The content-addressed files beside the db (``blobs/``) that hold large definitions."""
        return BlobFiles(self.path.parent / "blobs")

    def _blob_out(self, data: bytes) -> tuple[bytes, str | None]:
        """``(inline value, digest)``: large values go to a blob file (not for ``:memory:`` stores)."""
        if len(data) < INLINE_LIMIT or str(self.path) == ":memory:":
            return data, None
        return b"", self.blobs.put(data)

    def update_experiment(self, experiment_id: int, **values: Any) -> None:
        """Set columns of an experiment (``state``, ``progress``, ``owner``, ``heartbeat``, ...)."""
        self._update("experiments", EXPERIMENT_UPDATABLE, experiment_id, values)

    def get_searcher_state(self, experiment_id: int) -> dict[str, Any] | None:
        """The searcher's saved state, or ``None`` before the first save."""
        row = self._conn.execute(
            "SELECT searcher_state FROM experiments WHERE id = ?", (experiment_id,)
        ).fetchone()
        return None if row is None else _loads(row[0])

    def save_searcher_state(self, experiment_id: int, state: dict[str, Any], progress: float) -> None:
        """Persist the searcher (so an experiment resumes exactly) and its progress."""
        self._conn.execute(
            "UPDATE experiments SET searcher_state = ?, progress = ? WHERE id = ?",
            (json.dumps(state), progress, experiment_id),
        )

    def claim_experiment(self, experiment_id: int, owner: str, *, stale_after: float) -> bool:
        """Take ownership of an experiment if it has no live owner.

        An owner is dead when its heartbeat is older than ``stale_after`` seconds, or when it names a
        process on this host that no longer exists (owners are ``host:pid:nonce``).
        """
        row = self.get_experiment(experiment_id)
        now = time.time()
        if not lease_is_free(row.owner, row.heartbeat, now=now, stale_after=stale_after, claimant=owner):
            return False
        cur = self._conn.execute(
            "UPDATE experiments SET owner = ?, heartbeat = ? WHERE id = ? AND owner IS ?",
            (owner, now, experiment_id, row.owner),
        )
        return cur.rowcount == 1

    def delete_experiment(self, experiment_id: int) -> None:
        """Delete a terminal experiment and everything recorded of it (not its checkpoint files)."""
        state = self.get_experiment(experiment_id).state
        if not state.is_terminal:
            raise StoreError(
                f"experiment {experiment_id} is {state.value}; kill it (and wait) before deleting it"
            )
        self._conn.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,))

    # --- trials --------------------------------------------------------------------------------

    def create_trial(self, experiment_id: int, request_id: int, hparams: dict[str, Any]) -> int:
        """Insert a QUEUED trial for a searcher request; returns its id."""
        cur = self._conn.execute(
            "INSERT INTO trials (experiment_id, request_id, hparams, state, created_at) VALUES (?, ?, ?, ?, ?)",
            (experiment_id, request_id, json.dumps(hparams), TrialState.QUEUED.value, time.time()),
        )
        return int(cur.lastrowid or 0)

    def get_trial(self, trial_id: int) -> TrialRow:
        """One trial; raises :class:`NotFoundError` for an unknown id."""
        row = self._conn.execute(f"SELECT {TRIAL_COLUMNS} FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"trial {trial_id} not found in {self.path}")
        return self._trial(row)

    def list_trials(self, experiment_id: int, *, limit: int | None = None, offset: int = 0) -> list[TrialRow]:
        """An experiment's trials in creation order (a page of ``limit`` from ``offset`` if given)."""
        rows = self._conn.execute(
            f"SELECT {TRIAL_COLUMNS} FROM trials WHERE experiment_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (experiment_id, -1 if limit is None else limit, offset),
        ).fetchall()
        return [self._trial(r) for r in rows]

    def list_trials_cached(
        self, experiment_id: int, cache: dict[int, tuple[tuple[Any, ...], TrialRow]]
    ) -> tuple[list[TrialRow], set[int]]:
        """:meth:`list_trials` for a reader that polls (the widget, twice a second): a row whose columns
        are as in ``cache`` comes back as the same :class:`TrialRow` object, not parsed again.

        Returns the trials in creation order and the ids of those that are new or changed since the
        last call with this ``cache`` (which it updates in place; pass an empty dict the first time).
        At 1,000 trials this is one query and tuple comparisons, where ``list_trials`` parses every
        row's hyperparameters anew.
        """
        rows = self._conn.execute(
            f"SELECT {TRIAL_COLUMNS} FROM trials WHERE experiment_id = ? ORDER BY id", (experiment_id,)
        ).fetchall()
        out: list[TrialRow] = []
        changed: set[int] = set()
        seen: set[int] = set()
        for raw in rows:
            trial_id = raw[0]
            seen.add(trial_id)
            hit = cache.get(trial_id)
            if hit is not None and hit[0] == raw:
                out.append(hit[1])
                continue
            row = self._trial(raw)
            cache[trial_id] = (raw, row)
            changed.add(trial_id)
            out.append(row)
        for gone in set(cache) - seen:  # deleted with its experiment
            del cache[gone]
        return out, changed

    def update_trial(self, trial_id: int, **values: Any) -> None:
        """Set columns of a trial (``state``, ``restarts``, ``best_validation``, ``error``, ...)."""
        self._update("trials", TRIAL_UPDATABLE, trial_id, values)

    def trial_counts(self, experiment_id: int) -> dict[TrialState, int]:
        """How many trials of an experiment are in each state."""
        rows = self._conn.execute(
            "SELECT state, COUNT(*) FROM trials WHERE experiment_id = ? GROUP BY state", (experiment_id,)
        ).fetchall()
        return {TrialState(s): int(n) for s, n in rows}

    def trial_stats(self, experiment_ids: Sequence[int]) -> dict[int, TrialStats]:
        """Per experiment, in one aggregate query: trials per state and the range of their best metrics.

        Experiments without trials get empty stats, so readers (the server's experiment list) never
        load trial rows to draw a summary.
        """
        ids = list(dict.fromkeys(experiment_ids))
        counts: dict[int, dict[TrialState, int]] = {i: {} for i in ids}
        lows: dict[int, float | None] = dict.fromkeys(ids)
        highs: dict[int, float | None] = dict.fromkeys(ids)
        if ids:
            marks = ", ".join("?" for _ in ids)
            rows = self._conn.execute(
                "SELECT experiment_id, state, COUNT(*), MIN(best_validation), MAX(best_validation) FROM trials"
                f" WHERE experiment_id IN ({marks}) GROUP BY experiment_id, state",
                ids,
            ).fetchall()
            for exp_id, state, n, low, high in rows:
                counts[exp_id][TrialState(state)] = int(n)
                if low is not None:
                    lows[exp_id] = low if lows[exp_id] is None else min(low, lows[exp_id])
                    highs[exp_id] = high if highs[exp_id] is None else max(high, highs[exp_id])
        return {i: TrialStats(i, counts[i], lows[i], highs[i]) for i in ids}

    def experiment_aggregates(self, experiments: Sequence[ExperimentRow]) -> dict[int, ExperimentAggregate]:
        """Per experiment, what a list of them shows, in two aggregate queries whatever their size: trials
        per state and the range of their best metrics (as :meth:`trial_stats`), the work done
        (:mod:`~det_jupyter.store.progress`: its rule summed in SQL, :data:`TRIAL_PROGRESS_SQL`), the
        best trial (:mod:`~det_jupyter.searcher.ranking`'s order: finite values only, ties to the older
        trial) and when the first trial started. No trial row is read into Python.
        """
        rows = list({e.id: e for e in experiments}.values())
        if not rows:
            return {}
        plans = {e.id: plan_of(e.config) for e in rows}
        values = ", ".join("(?, ?, ?)" for _ in rows)
        args: list[Any] = []
        for e in rows:
            args += [e.id, *plan_sql_row(plans[e.id])]
        cte = f"WITH p(experiment_id, max_time, counts_steps) AS (VALUES {values})"
        counts: dict[int, dict[TrialState, int]] = {e.id: {} for e in rows}
        lows: dict[int, float | None] = dict.fromkeys(counts)
        highs: dict[int, float | None] = dict.fromkeys(counts)
        done = dict.fromkeys(counts, 0.0)
        started: dict[int, float | None] = dict.fromkeys(counts)
        for exp_id, state, n, low, high, work, first in self._conn.execute(
            f"{cte} SELECT t.experiment_id, t.state, COUNT(*), MIN(t.best_validation), MAX(t.best_validation),"
            f" SUM({TRIAL_PROGRESS_SQL}), MIN(t.started_at) FROM trials t JOIN p ON p.experiment_id = t.experiment_id"
            " GROUP BY t.experiment_id, t.state",
            args,
        ):
            counts[exp_id][TrialState(state)] = int(n)
            if low is not None:
                lows[exp_id] = low if lows[exp_id] is None else min(low, lows[exp_id])
                highs[exp_id] = high if highs[exp_id] is None else max(high, highs[exp_id])
            done[exp_id] += float(work or 0.0)
            if first is not None:
                started[exp_id] = first if started[exp_id] is None else min(first, started[exp_id])
        best = self.best_trial_ids(rows)
        out = {}
        for e in rows:
            stats = TrialStats(e.id, counts[e.id], lows[e.id], highs[e.id])
            progress = progress_of_done(e.state, done[e.id], stats.total, plans[e.id])
            out[e.id] = ExperimentAggregate(stats, progress, best.get(e.id), started[e.id])
        return out

    def best_trial_ids(self, experiments: Sequence[ExperimentRow]) -> dict[int, int]:
        """Per experiment with a scored trial, its best trial in one query: :mod:`~det_jupyter.searcher.ranking`'s
        order (finite values only; the config's ``smaller_is_better``, default true; ties to the older trial)."""
        rows = list({e.id: e for e in experiments}.values())
        if not rows:
            return {}
        values = ", ".join("(?, ?)" for _ in rows)
        args: list[Any] = []
        for e in rows:
            args += [e.id, 1.0 if _smaller_is_better(e.config) else -1.0]
        return dict(
            self._conn.execute(
                f"WITH p(experiment_id, sign) AS (VALUES {values}) SELECT experiment_id, id FROM ("
                " SELECT t.experiment_id, t.id, ROW_NUMBER() OVER ("
                " PARTITION BY t.experiment_id ORDER BY t.best_validation * p.sign, t.id) AS place"
                " FROM trials t JOIN p ON p.experiment_id = t.experiment_id WHERE t.best_validation IS NOT NULL"
                " AND t.best_validation > -9e999 AND t.best_validation < 9e999) WHERE place = 1",
                args,
            ).fetchall()
        )

    def best_validations(self, experiment_ids: Sequence[int]) -> dict[int, list[float]]:
        """Per experiment, the trials' best searcher-metric values in trial creation order (unscored skipped)."""
        ids = list(dict.fromkeys(experiment_ids))
        out: dict[int, list[float]] = {i: [] for i in ids}
        if ids:
            marks = ", ".join("?" for _ in ids)
            for exp_id, value in self._conn.execute(
                f"SELECT experiment_id, best_validation FROM trials WHERE experiment_id IN ({marks})"
                " AND best_validation IS NOT NULL ORDER BY experiment_id, id",
                ids,
            ):
                out[exp_id].append(float(value))
        return out

    # --- control requests ----------------------------------------------------------------------

    def add_request(self, experiment_id: int, action: ControlAction | str) -> int:
        """Ask the controller to pause, activate or kill an experiment; returns the request id."""
        action = ControlAction(action)
        self.get_experiment(experiment_id)  # NotFoundError for a bad id
        cur = self._conn.execute(
            "INSERT INTO requests (experiment_id, action, created_at) VALUES (?, ?, ?)",
            (experiment_id, action.value, time.time()),
        )
        return int(cur.lastrowid or 0)

    def pending_requests(self, experiment_id: int) -> list[RequestRow]:
        """Unhandled requests of an experiment, oldest first."""
        rows = self._conn.execute(
            "SELECT id, experiment_id, action, created_at FROM requests "
            "WHERE experiment_id = ? AND handled_at IS NULL ORDER BY id",
            (experiment_id,),
        ).fetchall()
        return [RequestRow(i, e, ControlAction(a), c) for i, e, a, c in rows]

    def mark_request_handled(self, request_id: int) -> None:
        """Record that the controller acted on a request."""
        self._conn.execute("UPDATE requests SET handled_at = ? WHERE id = ?", (time.time(), request_id))

    # --- helpers -------------------------------------------------------------------------------

    def _update(self, table: str, allowed: set[str], row_id: int, values: dict[str, Any]) -> None:
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"cannot update {table} columns {sorted(unknown)}; allowed: {sorted(allowed)}")
        if not values:
            return
        cols = ", ".join(f"{k} = ?" for k in values)
        args = [v.value if hasattr(v, "value") else v for v in values.values()]
        self._conn.execute(f"UPDATE {table} SET {cols} WHERE id = ?", (*args, row_id))

    @staticmethod
    def _experiment(row: Sequence[Any]) -> ExperimentRow:
        values = list(row)
        values[3] = ExperimentState(values[3])
        values[4] = json.loads(values[4])
        return ExperimentRow(*values)

    @staticmethod
    def _trial(row: Sequence[Any]) -> TrialRow:
        values = list(row)
        values[3] = json.loads(values[3])
        values[4] = TrialState(values[4])
        return TrialRow(*values)
