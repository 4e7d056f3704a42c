import * as React from 'react';

import { IClusterModel, IGpuModel, IWorkerModel } from './models';

/**
 * The cluster section: the cluster the experiments run on (the det-jupyter master's embedded
 * cluster, a running experiment's external one, or the configured scheduler) with its workers,
 * slots and GPUs (memory, utilisation), and a Dask dashboard link that works behind a proxy.
 */
export function ClusterSection(props: ClusterSection.IProps): JSX.Element {
  const c = props.cluster;
  const dashboard = c ? dashboardHref(c) : null;
  return (
    <div className="jp-DetSidebar-cluster" data-source={c?.source ?? ''}>
      <h3 className="jp-DetSidebar-subtitle">Cluster</h3>
      {!c ? (
        <div className="jp-DetSidebar-empty">Loading…</div>
      ) : (
        <>
          <div className="jp-DetSidebar-clusterMessage" title={c.message}>
            {c.message}
          </div>
          {c.attached && (
            <div className="jp-DetSidebar-clusterStats">
              <span className="jp-DetSidebar-workers">
                {c.workers.length} worker{c.workers.length === 1 ? '' : 's'}
              </span>
              {Object.entries(c.slots)
                .filter(([, n]) => n > 0)
                .map(([name, n]) => (
                  <span key={name} className="jp-DetSidebar-slots">
                    {n} {name} slot{n === 1 ? '' : 's'}
                  </span>
                ))}
              {c.experiments.length > 0 && (
                <span title="experiments running on it">running #{c.experiments.join(', #')}</span>
              )}
            </div>
          )}
          {c.workers.length > 0 && (
            <ul className="jp-DetSidebar-workerList">
              {c.workers.map(w => (
                <Private.Worker key={w.address || w.name} worker={w} />
              ))}
            </ul>
          )}
          {!c.attached && (
            <div className="jp-DetSidebar-gpus">
              {c.gpus.length === 0 ? (
                <span className="jp-DetSidebar-empty">no GPUs on the Jupyter server</span>
              ) : (
                c.gpus.map((g, i) => <Private.Gpu key={`${g.uuid}-${i}`} gpu={g} />)
              )}
            </div>
          )}
        </>
      )}
      {dashboard && (
        <a
          className="jp-DetSidebar-link"
          href={dashboard}
          target="_blank"
          rel="noopener noreferrer"
          title={dashboard}
        >
          Dask dashboard
        </a>
      )}
    </div>
  );
}

/** Props of {@link ClusterSection}. */
export namespace ClusterSection {
  /** What the section shows. */
  export interface IProps {
    /** The server's description of the cluster; `null` while it loads. */
    cluster: IClusterModel | null;
  }
}

/**
 * The dashboard link to follow: through jupyter-server-proxy when the server has it (a path on the
 * Jupyter server, so it works behind JupyterHub), else Dask's direct link, with an unspecified
 * host (`0.0.0.0`, `::`) replaced by the host the browser reached Jupyter at.
 */
export function dashboardHref(c: IClusterModel): string | null {
  if (c.dashboard_proxy_path) {
    return c.dashboard_proxy_path;
  }
  if (!c.dashboard_link) {
    return null;
  }
  try {
    const url = new URL(c.dashboard_link);
    if (['0.0.0.0', '[::]', ''].includes(url.hostname)) {
      url.hostname = window.location.hostname;
    }
    return url.toString();
  } catch {
    return c.dashboard_link;
  }
}

namespace Private {
  /** One worker: name, slots, and its GPUs. */
  export function Worker(props: { worker: IWorkerModel }): JSX.Element {
    const w = props.worker;
    const slots = Object.entries(w.resources)
      .filter(([, n]) => n > 0)
      .map(([name, n]) => `${n} ${name}`)
      .join(', ');
    return (
      <li className="jp-DetSidebar-worker" title={w.address || w.name}>
        <div className="jp-DetSidebar-workerLine">
          <span className="jp-DetSidebar-workerName">{w.name || w.address}</span>
          <span className="jp-DetSidebar-workerSlots">{slots || `${w.nthreads} threads`}</span>
        </div>
        {w.gpus.map((g, i) => (
          <Gpu key={`${g.uuid}-${i}`} gpu={g} />
        ))}
      </li>
    );
  }

  /** One GPU: its name, a utilisation bar, and memory use. */
  export function Gpu(props: { gpu: IGpuModel }): JSX.Element {
    const g = props.gpu;
    const util = g.utilization_percent;
    const memPct = g.memory_total_mb > 0 ? (100 * g.memory_used_mb) / g.memory_total_mb : 0;
    return (
      <div className="jp-DetSidebar-gpu" title={`${g.name} ${g.uuid}`}>
        <span className="jp-DetSidebar-gpuName">
          GPU {g.index} {g.name}
        </span>
        <span className="jp-DetSidebar-gpuUtil">
          {util === null ? 'util ?' : `${Math.round(util)}%`} ·{' '}
          {Math.round(g.memory_used_mb / 1024)}/{Math.round(g.memory_total_mb / 1024)} GiB
        </span>
        <div className="jp-DetSidebar-progress" title={`utilisation ${util ?? '?'}%`}>
          <div className="jp-DetSidebar-progressFill" style={{ width: `${util ?? 0}%` }} />
        </div>
        <div className="jp-DetSidebar-progress" title={`memory ${Math.round(memPct)}%`}>
          <div
            className="jp-DetSidebar-progressFill jp-mod-memory"
            style={{ width: `${memPct}%` }}
          />
        </div>
      </div>
    );
  }
}
