/**
 * The one number format of det_jupyter, as `det_jupyter/server/palette.py` writes it for the notebook
 * widget (`tests/server_tests/test_sidebar_api.py` runs both on the same values). No React here:
 * node loads the compiled module in that test.
 */
import { NO_VALUE } from './wire';

/** A metric in 4 significant digits; exponent form below 1e-3 or from 1e4; `–` for none. */
export function formatMetric(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return NO_VALUE;
  }
  return Math.abs(value) >= 1e4 || (Math.abs(value) < 1e-3 && value !== 0)
    ? value.toExponential(2)
    : value.toPrecision(4);
}

/** A fraction in [0, 1] as a whole percentage, floored: unfinished work never reads 100 %. */
export function formatPercent(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) {
    return NO_VALUE;
  }
  return `${Math.floor(Math.max(0, Math.min(1, fraction)) * 100 + 1e-9)}%`;
}

/** A duration in its two largest units: `45s`, `3m 20s`, `1h 2m`, `2d 3h`; `–` for none. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
    return NO_VALUE;
  }
  const s = Math.max(0, Math.trunc(seconds));
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${s % 60}s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** How long ago a time (seconds since the epoch) was, in its largest unit: `5m ago`. */
export function formatAge(time: number, now: number = Date.now() / 1000): string {
  const seconds = Math.max(0, now - time);
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
