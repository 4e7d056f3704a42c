import * as React from 'react';

import { IClusterModel, IGpuModel } from './models';

/** The cluster section: the attached cluster's workers and slots, GPUs, and the Dask dashboard. */
export function ClusterSection(props: ClusterSection.IProps): JSX.Element {
  const c = props.cluster;
  const dashboard = c?.dashboard_link ?? props.fallbackDashboard;
  return (
    <div className="jp-DetSidebar-cluster">
      <h3 className="jp-DetSidebar-subtitle">Cluster</h3>
      {!c ? (
        <div className="jp-DetSidebar-empty">Loading…</div>
      ) : (
        <>
          <div className="jp-DetSidebar-clusterMessage">{c.message}</div>
          {c.attached && (
            <div className="jp-DetSidebar-clusterStats">
              <span className="jp-DetSidebar-workers">{c.workers.length} workers</span>
              {Object.entries(c.slots)
                .filter(([, n]) => n > 0)
                .map(([name, n]) => (
                  <span key={name} className="jp-DetSidebar-slots">
                    {n} {name} slots
                  </span>
                ))}
            </div>
          )}
          <div className="jp-DetSidebar-gpus">
            {c.gpus.length === 0 ? (
              <span className="jp-DetSidebar-empty">no GPUs</span>
            ) : (
              c.gpus.map((g, i) => <Private.Gpu key={`${g.uuid}-${i}`} gpu={g} />)
            )}
          </div>
        </>
      )}
      {dashboard && (
        <a
          className="jp-DetSidebar-link"
          href={dashboard}
          target="_blank"
          rel="noopener noreferrer"
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
    /** The dashboard to link when the cluster names none (a running experiment's). */
    fallbackDashboard: string | null;
  }
}

namespace Private {
  /** One GPU: its name, a utilisation bar and memory use. */
  export function Gpu(props: { gpu: IGpuModel }): JSX.Element {
    const g = props.gpu;
    return (
      <div className="jp-DetSidebar-gpu" title={g.uuid}>
        <span className="jp-DetSidebar-gpuName">
          GPU {g.index} {g.name}
        </span>
        <div className="jp-DetSidebar-progress">
          <div
            className="jp-DetSidebar-progressFill"
            style={{ width: `${g.utilization_percent ?? 0}%` }}
          />
        </div>
        <span className="jp-DetSidebar-gpuUtil">
          {g.utilization_percent === null ? '?' : `${Math.round(g.utilization_percent)}%`} ·{' '}
          {Math.round(g.memory_used_mb)}/{Math.round(g.memory_total_mb)} MiB
        </span>
      </div>
    );
  }
}
