import * as React from 'react';

/**
 * How the sidebar writes wire values: state badges, metrics, hyperparameters, ages and errors.
 */

/** A state as a badge (`data-state` carries the full state for styling). */
export function StateBadge(props: { state: string }): JSX.Element {
  return (
    <span className="jp-DetSidebar-badge" data-state={props.state}>
      {props.state === 'STOPPING_CANCELED' ? 'STOPPING' : props.state}
    </span>
  );
}

/** A metric value in 4 significant digits (exponent form when very large or small); `–` for none. */
export function formatMetric(value: number | null): string {
  if (value === null || value === undefined) {
    return '–';
  }
  return Math.abs(value) >= 1e4 || (Math.abs(value) < 1e-3 && value !== 0)
    ? value.toExponential(2)
    : value.toPrecision(4);
}

/** Hyperparameters as `name=value, ...` (numbers in 4 significant digits, the rest as JSON). */
export function formatHparams(hparams: Record<string, unknown>): string {
  return Object.entries(hparams)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(4)) : JSON.stringify(v)}`)
    .join(', ');
}

/** How long ago a time (seconds since the epoch) was, in its largest unit: `5m ago`. */
export function formatAge(createdAt: number): string {
  const seconds = Math.max(0, Date.now() / 1000 - createdAt);
  if (seconds < 60) {
    return `${Math.floor(seconds)}s ago`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)}m ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)}h ago`;
  }
  return `${Math.floor(seconds / 86400)}d ago`;
}

/** The last line of a text (of a traceback: the exception). */
export function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1];
}
