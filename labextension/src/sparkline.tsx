import * as React from 'react';

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
