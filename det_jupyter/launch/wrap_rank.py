"""``python3 -m det_jupyter.launch.wrap_rank RANK [--no-redirect-stdio] -- CMD ...``: run ``CMD``,
prefixing each line it prints with ``[rank=RANK] `` (Determined's ``determined.launch.wrap_rank``).

Its exit status is the command's; SIGTERM / SIGINT are passed on to the command.

Example:
    >>> import subprocess, sys
    >>> out = subprocess.run([sys.executable, "-m", "det_jupyter.launch.wrap_rank", "3", "--",
    ...                       sys.executable, "-c", "print('hi')"], capture_output=True, text=True)
    >>> out.stdout, out.returncode
    ('[rank=3] hi\\n', 0)
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from typing import IO

__all__ = ["main", "prefix_lines"]


def prefix_lines(source: IO[bytes], sink: IO[bytes], prefix: bytes) -> None:
    """Copy ``source`` to ``sink`` line by line, each line starting with ``prefix``.

    Example:
        >>> import io
        >>> out = io.BytesIO()
        >>> prefix_lines(io.BytesIO(b"a\\nb"), out, b"[rank=1] ")
        >>> out.getvalue()
        b'[rank=1] a\\n[rank=1] b'
    """
    for line in iter(source.readline, b""):
        sink.write(prefix + line)
        sink.flush()


def main(argv: list[str] | None = None) -> int:
    """Parse ``RANK [--no-redirect-stdio] -- CMD ...``, run the command; its exit status."""
    parser = argparse.ArgumentParser(prog="python3 -m det_jupyter.launch.wrap_rank")
    parser.add_argument("rank", help="the rank shown before each line (or the name of a variable holding it)")
    parser.add_argument("--no-redirect-stdio", action="store_true", help="run the command with no prefixes")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("give the command to run after --")
    rank = args.rank
    if not rank.isdigit():  # Determined allows the name of a variable, e.g. RANK
        import os

        rank = os.environ.get(rank, rank)
    if args.no_redirect_stdio:
        proc = subprocess.Popen(cmd)
    else:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
    threads = []
    if not args.no_redirect_stdio:
        assert proc.stdout is not None and proc.stderr is not None
        prefix = f"[rank={rank}] ".encode()
        threads = [
            threading.Thread(target=prefix_lines, args=(proc.stdout, sys.stdout.buffer, prefix), daemon=True),
            threading.Thread(target=prefix_lines, args=(proc.stderr, sys.stderr.buffer, prefix), daemon=True),
        ]
        for thread in threads:
            thread.start()
    status = proc.wait()
    for thread in threads:
        thread.join()
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
