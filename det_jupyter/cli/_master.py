"""``det-jupyter master start|status|stop``: the home's long-lived master."""

from __future__ import annotations

__all__ = ["master"]


def master(action: str, *, foreground: bool, idle_timeout: float | None) -> int:
    """Start, show or stop the master of ``$DET_JUPYTER_HOME``; the exit status (status: 1 when none runs)."""
    from det_jupyter.master import (
        MasterPaths,
        default_idle_timeout,
        ensure_master,
        running_master,
        stop_master,
    )

    paths = MasterPaths.of()
    if action == "start":
        if foreground:
            from det_jupyter.master.process import serve

            idle = idle_timeout if idle_timeout is not None else default_idle_timeout()
            return serve(paths.home, idle_timeout=idle, n_workers=None, gpus=None)
        info = running_master()
        if info is not None:
            print(f"a master already runs for {paths.home}: pid {info.pid} (dashboard {info.dashboard_link})")
            return 0
        info = ensure_master(idle_timeout=idle_timeout)
        print(
            f"master started for {paths.home}: pid {info.pid}, dashboard {info.dashboard_link}, log {paths.log}"
        )
        return 0
    if action == "stop":
        info = stop_master()
        print(f"stopped the master pid {info.pid}" if info else f"no master runs for {paths.home}")
        return 0
    info = running_master()
    if info is None:
        print(f"no master runs for {paths.home} (the first submit starts one; log: {paths.log})")
        return 1
    slots = ", ".join(f"{v:g} {k}" for k, v in info.slots.items() if v) or "none"
    print(
        f"master pid {info.pid} for {paths.home}, up {info.uptime:.0f}s, idle timeout {info.idle_timeout:g}s"
    )
    print(f"scheduler {info.scheduler}, dashboard {info.dashboard_link or 'none'}, slots {slots}")
    print(f"experiments: {', '.join(map(str, info.experiments)) or 'none'}; log {paths.log}")
    return 0
