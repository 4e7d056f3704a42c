import * as React from 'react';

import { STATE_COLORS } from './wire';

export { formatAge, formatDuration, formatMetric, formatPercent } from './numbers';

/**
 * How the sidebar draws wire values: state badges and dots in the shared palette (`STATE_COLORS`,
 * generated from `det_jupyter/server/palette.py`, which the notebook widget uses too), hparams and
 * errors. Numbers: `numbers.ts`.
 */

/** The theme colour of a state (a JupyterLab CSS variable). */
export function stateColor(state: string): string {
  return (STATE_COLORS[state] ?? STATE_COLORS.QUEUED).css;
}

/** A state as a badge (`data-state` carries the full state for styling and tests). */
export function StateBadge(props: { state: string }): JSX.Element {
  return (
    <span
      className="jp-DetSidebar-badge"
      data-state={props.state}
      style={{ background: stateColor(props.state) }}
    >
      {props.state === 'STOPPING_CANCELED' ? 'STOPPING' : props.state}
    </span>
  );
}

/** A state as a coloured dot with the state as its tooltip (for narrow tables). */
export function StateDot(props: { state: string }): JSX.Element {
  return (
    <span
      className="jp-DetSidebar-dot"
      data-state={props.state}
      title={props.state}
      aria-label={props.state}
      style={{ background: stateColor(props.state) }}
    />
  );
}

/** Hyperparameters as `name=value, ...` (numbers in 4 significant digits, the rest as JSON). */
export function formatHparams(hparams: Record<string, unknown>): string {
  return Object.entries(hparams)
    .map(([k, v]) => `${k}=${formatValue(v)}`)
    .join(', ');
}

/** One hyperparameter value: numbers in 4 significant digits, the rest as JSON. */
export function formatValue(v: unknown): string {
  return typeof v === 'number' ? String(Number(v.toPrecision(4))) : JSON.stringify(v);
}

/** The last line of a text (of a traceback: the exception). */
export function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1];
}
