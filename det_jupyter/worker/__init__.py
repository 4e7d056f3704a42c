"""What runs on a Dask worker: the ``run_trial`` task (``runtime``) and the ``TrialContext`` user code
talks to (``context``). Workers never touch the store: they speak to the controller only through
events the context emits.
"""
