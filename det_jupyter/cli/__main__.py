"""``python -m det_jupyter.cli``: the ``det-jupyter`` command."""

from det_jupyter.cli import main

raise SystemExit(main())
