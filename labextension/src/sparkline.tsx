import * as React from 'react';

import { formatMetric } from './numbers';

/** Props of {@link Sparkline}. */
export interface ISparklineProps {
  /** Values in order (the trials' best searcher metric). */
  values: number[];
  /** Whether smaller values are better (the running best is drawn as a second line). */
  smallerIsBetter: boolean;
  /** Width in CSS pixels. */
  width?: number;
  /** Height in CSS pixels. */
  height?: number;
}

/**
 * A tiny inline-SVG chart: each trial's best metric (dots and line) and the running best (thicker
 * line), scaled to the box. Colours come from JupyterLab's theme variables (see `style/base.css`).
 */
export function Sparkline(props: ISparklineProps): JSX.Element | null {
  const { values, smallerIsBetter } = props;
  const width = props.width ?? 80;
  const height = props.height ?? 18;
  if (values.length === 0) {
    return null;
  }
  const low = Math.min(...values);
  const high = Math.max(...values);
  const span = high - low || 1;
  const x = (i: number): number =>
    values.length === 1 ? width / 2 : 1 + (i * (width - 2)) / (values.length - 1);
  // screen y grows downwards: draw "better" upwards
  const y = (v: number): number => {
    const t = (v - low) / span;
    return 1 + (smallerIsBetter ? t : 1 - t) * (height - 2);
  };
  const running: number[] = [];
  values.forEach((v, i) => {
    const prev = i === 0 ? v : running[i - 1];
    running.push(smallerIsBetter ? Math.min(prev, v) : Math.max(prev, v));
  });
  const path = (vs: number[]): string =>
    vs.map((v, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const best = running[running.length - 1];
  return (
    <svg
      className="jp-DetSidebar-sparkline"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`searcher metric of ${values.length} trials, best ${best}`}
    >
      <path className="jp-DetSidebar-sparkline-trials" d={path(values)} />
      <path className="jp-DetSidebar-sparkline-best" d={path(running)} />
      <circle
        className="jp-DetSidebar-sparkline-dot"
        cx={x(values.length - 1)}
        cy={y(values[values.length - 1])}
        r={1.8}
      />
    </svg>
  );
}

/** Props of {@link SeriesChart}. */
export interface ISeriesChartProps {
  /** The chart's title (metric name and kind). */
  title: string;
  /** Steps, ascending. */
  steps: number[];
  /** Values at those steps (`null`: NaN or infinite, left out). */
  values: (number | null)[];
  /** Width in CSS pixels. */
  width?: number;
  /** Height in CSS pixels. */
  height?: number;
}

/**
 * A small line chart of one metric series, with its step and value ranges written at the edges.
 * Inline SVG in theme colours: no plotting library in the sidebar.
 */
export function SeriesChart(props: ISeriesChartProps): JSX.Element {
  const width = props.width ?? 240;
  const height = props.height ?? 96;
  const pad = { left: 4, right: 4, top: 16, bottom: 14 };
  const points = props.steps
    .map((s, i) => [s, props.values[i]] as const)
    .filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]));
  const xs = points.map(p => p[0]);
  const ys = points.map(p => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x: number): number =>
    pad.left + ((x - x0) / (x1 - x0 || 1)) * (width - pad.left - pad.right);
  const sy = (y: number): number =>
    pad.top + (1 - (y - y0) / (y1 - y0 || 1)) * (height - pad.top - pad.bottom);
  const d = points
    .map((p, i) => `${i === 0 ? 'M' : 'L'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`)
    .join(' ');
  const last = points[points.length - 1];
  return (
    <svg
      className="jp-DetChart"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`${props.title}: ${points.length} points`}
    >
      <text className="jp-DetChart-title" x={pad.left} y={11}>
        {props.title}
        {last ? ` · ${formatMetric(last[1])}` : ''}
      </text>
      {points.length > 0 && (
        <>
          <path className="jp-DetChart-line" d={d} />
          {points.length === 1 && (
            <circle className="jp-DetChart-dot" cx={sx(xs[0])} cy={sy(ys[0])} r={2} />
          )}
          <text className="jp-DetChart-axis" x={pad.left} y={height - 2}>
            {x0}
          </text>
          <text className="jp-DetChart-axis" x={width - pad.right} y={height - 2} textAnchor="end">
            {x1} steps
          </text>
          <text className="jp-DetChart-axis" x={width - pad.right} y={11} textAnchor="end">
            {formatMetric(y0)} – {formatMetric(y1)}
          </text>
        </>
      )}
    </svg>
  );
}
