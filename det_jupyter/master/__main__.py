"""``python -m det_jupyter.master``: run the master of ``$DET_JUPYTER_HOME`` in the foreground.

Example:
    $ DET_JUPYTER_HOME=~/proj python -m det_jupyter.master --idle-timeout 600
"""

from __future__ import annotations

import sys

from det_jupyter.master import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
