"""What runs on a Dask worker: the ``run_trial`` task (``runtime``) and the ``TrialContext`` user code
talks to (``context``, with ``checkpoint_context``, ``subcontexts`` and ``sinks``). Workers never touch
the store: they speak to the controller only through the typed events of ``events`` (one encoder,
one decoder), whose metric values follow the one policy of ``metric_values``.
"""
