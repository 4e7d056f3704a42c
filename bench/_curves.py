"""Search-benchmark tasks: one learning curve per configuration, identical in every framework's venv.

``bench/bench_search.py`` runs det_jupyter's searchers on these tasks, and ``_anchor_raytune.py`` /
``_anchor_optuna.py`` run Ray Tune's and Optuna's in their own venv on the very same functions: a
configuration gives the same curve, epoch by epoch, whichever system trains it. Only the standard
library and numpy are used (both venvs have numpy).

Two tasks:

* ``synthetic``: a deterministic learning-curve model over five hyperparameters, evaluated instantly.
  Validation accuracy follows ``1 - err(t)`` with ``err(t) = e_inf + (e0 - e_inf) / (1 + (t / tau) **
  alpha) + overfit(t) + noise``. The learning rate has an optimum that moves with the batch size (the
  linear-scaling rule); too high diverges (stays near chance), too low is slow but ends well, so curves
  cross (a slow starter can win at the end); wide networks without dropout learn fast and then overfit
  (another crossing); too much dropout or weight decay lowers the asymptote. A few per cent of the space
  reaches 95-96 %, most of it stays far below, so 16 random configurations do not saturate it.
  Noise: 0.4 % per validation plus a fixed offset per configuration (a "seed" effect), both from a
  hash of the configuration and the epoch.
* ``digits``: a real model: a one-hidden-layer numpy MLP trained with SGD + momentum 0.9 (learning
  rate, batch size, width and weight decay searched) on a hard subset
  of scikit-learn's digits (the confusable classes 1, 3, 4, 5, 7, 8, 9; 240 training images with 25 %
  of their labels replaced at random; 600 clean validation images), prepared once by
  :func:`write_digits` into an ``.npz`` file that every venv reads.

Each epoch of either task lasts at least ``epoch_seconds`` (a sleep fills the rest): a workload of
realistic small epochs, so asynchronous stop decisions arrive as they would for real training.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "SPACES",
    "TASKS",
    "curve",
    "det_hyperparameters",
    "digits_curve",
    "synthetic_accuracy",
    "write_digits",
]

TASKS = ("synthetic", "digits")

# name -> (kind, low, high | values): "log" is log10 bounds, "int" inclusive, "cat" a list
SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "synthetic": {
        "learning_rate": ("log", -5.0, 0.0),
        "batch_size": ("cat", [16, 32, 64, 128, 256]),
        "width": ("int", 16, 1024),
        "dropout": ("float", 0.0, 0.8),
        "weight_decay": ("log", -7.0, -1.0),
    },
    "digits": {
        "learning_rate": ("log", -4.0, 1.0),
        "batch_size": ("cat", [8, 16, 32, 64, 128]),
        "width": ("int", 4, 256),
        "weight_decay": ("log", -6.0, -1.0),
    },
}


def det_hyperparameters(task: str) -> dict[str, Any]:
    """The task's search space as a det_jupyter (Determined) ``hyperparameters`` section."""
    out: dict[str, Any] = {}
    for name, (kind, *args) in SPACES[task].items():
        if kind == "log":
            out[name] = {"type": "log", "base": 10, "minval": args[0], "maxval": args[1]}
        elif kind == "int":
            out[name] = {"type": "int", "minval": args[0], "maxval": args[1]}
        elif kind == "float":
            out[name] = {"type": "double", "minval": args[0], "maxval": args[1]}
        else:
            out[name] = {"type": "categorical", "vals": list(args[0])}
    return out


def _key(hp: dict[str, Any]) -> str:
    return "|".join(f"{k}={float(hp[k]):.10g}" for k in sorted(hp) if k in _ALL_NAMES)


_ALL_NAMES = {name for space in SPACES.values() for name in space}


def _unit(*parts: Any) -> float:
    """A uniform number in [0, 1) from a hash of the parts (same in every process and venv)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _gauss(*parts: Any) -> float:
    u1, u2 = max(_unit(*parts, "a"), 1e-12), _unit(*parts, "b")
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def synthetic_accuracy(hp: dict[str, Any], epoch: int, *, noise: bool = True) -> float:
    """Validation accuracy of configuration ``hp`` after ``epoch`` epochs (1-based) on the synthetic task."""
    x = math.log10(float(hp["learning_rate"]))
    batch = float(hp["batch_size"])
    width = float(hp["width"])
    dropout = float(hp["dropout"])
    wd = math.log10(float(hp["weight_decay"]))
    t = float(epoch)
    key = _key(hp)
    opt = -2.6 + 0.8 * math.log10(batch / 64.0)  # best log10(lr) moves with the batch size
    d = x - opt
    if d > 1.1:  # diverged: near chance, a little noise
        err = 0.9 - 0.02 * _unit(key, "div")
    else:
        e_inf = 0.035
        e_inf += 0.05 * max(d, 0.0) ** 2 + 0.008 * min(d, 0.0) ** 2  # too high hurts more than too low
        e_inf += 0.20 * math.exp(-width / 48.0)  # capacity
        e_inf += 0.012 * (wd + 4.0) ** 2 if wd > -4.0 else 0.002 * (wd + 4.0) ** 2
        e_inf += 0.25 * max(dropout - 0.5, 0.0) ** 2
        # speed: low learning rates and heavy dropout are slow; small batches take more steps per epoch
        tau = 2.0 * 10 ** max(-d, 0.0) ** 1.2 * (64.0 / batch) ** -0.3 * (1.0 + 3.0 * max(dropout - 0.3, 0.0))
        alpha = 1.1 + 0.3 * _unit(key, "alpha")
        err = e_inf + (0.9 - e_inf) / (1.0 + (t / tau) ** alpha)
        # wide nets without dropout overfit after a while (a late crossing)
        overfit = 0.10 * max(0.35 - dropout, 0.0) / 0.35 * min(width / 512.0, 1.5) * (1 + max(d, 0.0))
        onset = 6.0 + 10.0 * _unit(key, "onset")
        err += overfit * (1.0 - math.exp(-max(t - onset, 0.0) / 40.0))
        err += 0.006 * _gauss(key, "seed")  # the configuration's own run-to-run offset
    if noise:
        err += 0.004 * _gauss(key, "epoch", epoch)
    return min(max(1.0 - err, 0.0), 1.0)


def write_digits(path: str) -> str:
    """Write the hard digits subset (needs scikit-learn: run in det_jupyter's venv) to ``path``."""
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    keep = np.isin(y, [1, 3, 4, 5, 7, 8, 9])
    x, y = (x[keep] / 16.0).astype(np.float32), y[keep]
    classes = np.unique(y)
    y = np.searchsorted(classes, y)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    tr, va = order[:240], order[240:840]
    y_tr = y[tr].copy()
    flip = rng.random(len(tr)) < 0.25
    y_tr[flip] = rng.integers(0, len(classes), flip.sum())
    tmp = path + ".tmp.npz"
    np.savez(tmp, x_tr=x[tr], y_tr=y_tr, x_va=x[va], y_va=y[va])
    os.replace(tmp, path)
    return path


_DIGITS: dict[str, Any] = {}


def digits_curve(hp: dict[str, Any], data_path: str, max_epochs: int) -> Iterator[float]:
    """Train the numpy MLP on the hard digits subset; yield validation accuracy after each epoch."""
    import numpy as np

    if data_path not in _DIGITS:
        with np.load(data_path) as f:
            _DIGITS[data_path] = {k: f[k] for k in f.files}
    d = _DIGITS[data_path]
    x_tr, y_tr, x_va, y_va = d["x_tr"], d["y_tr"], d["x_va"], d["y_va"]
    n_cls = int(max(y_tr.max(), y_va.max())) + 1
    lr, wd = float(hp["learning_rate"]), float(hp["weight_decay"])
    h, bs = int(hp["width"]), int(hp["batch_size"])
    rng = np.random.default_rng(int(_unit(_key(hp), "init") * 2**32))
    w1 = (rng.standard_normal((x_tr.shape[1], h)) * math.sqrt(2.0 / x_tr.shape[1])).astype(np.float32)
    b1 = np.zeros(h, np.float32)
    w2 = (rng.standard_normal((h, n_cls)) * math.sqrt(1.0 / h)).astype(np.float32)
    b2 = np.zeros(n_cls, np.float32)
    params = [w1, b1, w2, b2]
    vel = [np.zeros_like(p) for p in params]
    eye = np.eye(n_cls, dtype=np.float32)
    for _ in range(max_epochs):
        order = rng.permutation(len(y_tr))
        with np.errstate(all="ignore"):
            for i in range(0, len(order), bs):
                idx = order[i : i + bs]
                xb, yb = x_tr[idx], eye[y_tr[idx]]
                z = xb @ w1 + b1
                a = np.maximum(z, 0.0)
                logits = a @ w2 + b2
                logits -= logits.max(axis=1, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(axis=1, keepdims=True)
                g = (p - yb) / len(idx)
                gw2, gb2 = a.T @ g, g.sum(0)
                ga = g @ w2.T
                ga[z <= 0] = 0.0
                gw1, gb1 = xb.T @ ga, ga.sum(0)
                for p_, g_, v_ in zip(params, (gw1, gb1, gw2, gb2), vel):
                    v_ *= 0.9
                    v_ += g_ + wd * p_
                    p_ -= lr * v_
            pred = (np.maximum(x_va @ w1 + b1, 0.0) @ w2 + b2).argmax(axis=1)
        acc = float((pred == y_va).mean())
        yield acc if math.isfinite(acc) else 0.0


def curve(task: str, hp: dict[str, Any], max_epochs: int, *, data_path: str = "",
          epoch_seconds: float = 0.0) -> Iterator[float]:  # fmt: skip
    """Validation accuracy after each epoch (1..max_epochs); each epoch takes >= ``epoch_seconds``."""
    if task == "synthetic":
        it: Iterator[float] = (synthetic_accuracy(hp, e) for e in range(1, max_epochs + 1))
    elif task == "digits":
        it = digits_curve(hp, data_path, max_epochs)
    else:
        raise ValueError(f"task must be one of {TASKS} (got {task!r})")
    while True:
        t0 = time.perf_counter()
        try:
            acc = next(it)
        except StopIteration:
            return
        rest = epoch_seconds - (time.perf_counter() - t0)
        if rest > 0:
            time.sleep(rest)
        yield acc


def sample(task: str, rng: random.Random) -> dict[str, Any]:
    """One random configuration (used to describe the task: quantiles of the final accuracy)."""
    hp: dict[str, Any] = {}
    for name, (kind, *args) in SPACES[task].items():
        if kind == "log":
            hp[name] = 10 ** rng.uniform(args[0], args[1])
        elif kind == "int":
            hp[name] = rng.randint(args[0], args[1])
        elif kind == "float":
            hp[name] = rng.uniform(args[0], args[1])
        else:
            hp[name] = rng.choice(args[0])
    return hp


def stream(task: str, seed: int, tag: str) -> Iterator[dict[str, Any]]:
    """An endless, reproducible sequence of random configurations (the same in every process and venv).

    The replay (:func:`replay`) gives every ASHA-type method of one seed the same sequence (``tag``
    ``"asha"``): their differences are then their stop decisions, not which configurations they drew.
    Random search draws its own (``tag`` ``"random"``), independent of theirs.
    """
    rng = random.Random(f"{task}/{seed}/{tag}")
    while True:
        yield sample(task, rng)


class Curves:
    """Learning curves computed lazily and kept, so the methods one process replays share the work.

    ``get(hp, epoch)`` is the value ``curve(task, hp, ...)`` yields at ``epoch`` (1-based), without the
    epoch sleep.
    """

    def __init__(self, task: str, max_time: int, data_path: str = "") -> None:
        self.task, self.max_time, self.data_path = task, max_time, data_path
        self._values: dict[str, list[float]] = {}
        self._iters: dict[str, Iterator[float]] = {}

    def get(self, hp: dict[str, Any], epoch: int) -> float:
        key = _key(hp)
        values = self._values.setdefault(key, [])
        if key not in self._iters:
            self._iters[key] = curve(self.task, hp, self.max_time, data_path=self.data_path)
        while len(values) < epoch:
            values.append(next(self._iters[key]))
        return values[epoch - 1]


def replay(scheduler: Any, curves: Curves, budget: int, slots: int) -> dict[str, Any]:
    """Replay a search on ``curves``: ``slots`` trials train at once, each epoch one tick long.

    ``scheduler`` is an adapter around one system's scheduler: ``start() -> (key, hp) | None`` (a trial
    to start now, or none now), ``report(key, epoch, acc) -> bool`` (``True``: stop the trial now) and
    ``end(key, epoch, stopped)``. A trial also ends at ``curves.max_time``. Every report is one
    trial-epoch; the replay ends when ``budget`` are spent or nothing runs. Decisions are immediate (as
    det_jupyter's exact rung decisions, Ray Tune's and Optuna's synchronous ones), so the figures are
    the schedulers' own, free of the machine's load.

    Returns a compact trace: ``spent`` trial-epochs, ``ticks``, ``trials`` started, ``stopped`` early,
    and ``improve``: ``[trial-epochs, tick, best so far]`` each time the best validation rises.
    """
    running: list[list[Any] | None] = [None] * slots
    spent = tick = trials = stopped = 0
    best = -math.inf
    improve: list[list[float]] = []
    while spent < budget:
        for i in range(slots):
            if running[i] is None:
                new = scheduler.start()
                if new is not None:
                    running[i] = [new[0], new[1], 0]
                    trials += 1
        if all(r is None for r in running):
            break
        tick += 1
        for i, r in enumerate(running):
            if r is None or spent >= budget:
                continue
            r[2] += 1
            acc = curves.get(r[1], r[2])
            spent += 1
            if acc > best:
                best = acc
                improve.append([spent, tick, acc])
            stop = bool(scheduler.report(r[0], r[2], acc))
            if stop or r[2] >= curves.max_time:
                early = r[2] < curves.max_time
                stopped += early
                scheduler.end(r[0], r[2], stop and early)
                running[i] = None
    return {"spent": spent, "ticks": tick, "trials": trials, "stopped": stopped, "improve": improve}


class RandomReplay:
    """Random search for :func:`replay`: ``n`` configurations of ``configs``, each to ``max_time``."""

    def __init__(self, configs: Iterator[dict[str, Any]], n: int) -> None:
        self._configs, self._left = configs, n

    def start(self) -> tuple[int, dict[str, Any]] | None:
        if self._left <= 0:
            return None
        self._left -= 1
        return (self._left, next(self._configs))

    def report(self, key: Any, epoch: int, acc: float) -> bool:
        return False

    def end(self, key: Any, epoch: int, stopped: bool) -> None:
        pass


def add_search_arguments(parser: Any, what: str) -> None:
    """The command-line arguments every anchor script takes for a search on one of these tasks."""
    parser.add_argument("--search", default=None, help=f"a bench/_curves.py task: run the {what}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=int, default=1024, help="trial-epochs")
    parser.add_argument("--max-time", type=int, default=64, help="epochs of a full trial")
    parser.add_argument("--epoch-seconds", type=float, default=0.025)
    parser.add_argument("--data-path", default="")
    parser.add_argument("--concurrency", type=int, default=2)
