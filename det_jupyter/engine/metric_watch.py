"""The searcher-metric rule: say why a search ranked nothing when no trial ever reported its metric.

An experiment whose trials ended without one validation carrying ``searcher.metric`` (a framework
trial without validation data, a ``train(ctx)`` that only reports training metrics) ranked nothing:
``best_trial()`` is ``None`` and every searcher decision was made on "worst". The experiment still
ends COMPLETED (its trials did complete, and a run that only trains, e.g. ``searcher: single``, is
legitimate) with :meth:`MetricWatch.missing` as its ``error``. :class:`~det_jupyter.engine.lifecycle.
Lifecycle` feeds it what the controller sees; it is pure.

Example:
    >>> from det_jupyter.worker.events import MetricKind
    >>> watch = MetricWatch("val_loss")
    >>> watch.note(MetricKind.TRAINING, {"loss": 0.5})
    >>> watch.unscored_end()
    >>> print(watch.missing())  # doctest: +ELLIPSIS
    no trial reported the searcher metric 'val_loss': no trial reported a validation (training metrics: ['loss'])...
"""

from __future__ import annotations

from collections.abc import Mapping

from det_jupyter.worker.events import MetricKind

__all__ = ["MetricWatch"]

_KEYS_KEPT = 50


class MetricWatch:
    """What one controller saw of the searcher metric: whether any trial reported it, and what was reported.

    Args:
        metric: the config's ``searcher.metric``.
    """

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self._seen = False
        self._unscored_ends = 0
        self._reported: dict[str, set[str]] = {"training": set(), "validation": set()}

    def saw_metric(self) -> None:
        """The metric was reported (or may have been, by runs this controller did not see)."""
        self._seen = True

    def note(self, kind: MetricKind, metrics: Mapping[str, object]) -> None:
        """A report arrived: remember whether it carries the metric, else (some of) its keys."""
        if self._seen:
            return
        if kind == MetricKind.VALIDATION and self.metric in metrics:
            self._seen = True
            return
        keys = self._reported[kind.value]
        if len(keys) < _KEYS_KEPT:
            keys.update(list(metrics)[: _KEYS_KEPT - len(keys)])

    def unscored_end(self) -> None:
        """A trial ended without ever reporting the metric."""
        self._unscored_ends += 1

    def missing(self) -> str | None:
        """Why the search has no result, naming the metric and the keys reported; ``None`` when a trial
        reported the metric, when no trial ended unscored, or when earlier runs were not seen here.

        Example:
            >>> MetricWatch("val_loss").missing() is None
            True
        """
        if self._seen or self._unscored_ends == 0:
            return None
        validation, training = (sorted(self._reported[k]) for k in ("validation", "training"))
        if validation:
            seen = f"their validations reported {validation}"
        else:
            seen = "no trial reported a validation" + (
                f" (training metrics: {training})" if training else " or any metric"
            )
        return (
            f"no trial reported the searcher metric {self.metric!r}: {seen}, so nothing was ranked and "
            f"best_trial() is None. Fix: report it with ctx.report_validation_metrics(steps, "
            f"{{{self.metric!r}: value}}) (TorchTrial / KerasTrial: give them validation data), or set "
            "searcher.metric to a key the trials report"
        )
