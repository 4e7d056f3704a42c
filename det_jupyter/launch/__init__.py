"""Launchers for command entrypoints, as Determined's ``determined.launch``.

A command trial with ``resources.slots_per_trial: N`` runs its command once per rank's worker (its
*container*); a launcher in front of the script starts one process per slot of that container and
gives each the variables ``torch.distributed`` and ``det.core.DistributedContext`` read:

- :mod:`det_jupyter.launch.torch_distributed`: ``python3 -m det_jupyter.launch.torch_distributed --
  python3 train.py`` (like ``determined.launch.torch_distributed``, a small torchrun);
- :mod:`det_jupyter.launch.wrap_rank`: ``python3 -m det_jupyter.launch.wrap_rank RANK -- CMD``
  prefixes every output line of ``CMD`` with ``[rank=RANK] `` (like ``determined.launch.wrap_rank``).

Example (a Determined-style config)::

    entrypoint: python3 -m det_jupyter.launch.torch_distributed -- python3 train.py
    resources: {slots_per_trial: 2}
"""
