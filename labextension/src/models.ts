/**
 * The models the sidebar works with: the REST API's wire format, generated into `wire.ts` from
 * `det_jupyter/server/serializers.py`, and the little domain knowledge the UI adds to it.
 */
import { ExperimentState } from './wire';

export * from './wire';

/** Whether an experiment in `state` will never run again (as `ExperimentState.is_terminal`). */
export function isTerminal(state: ExperimentState): boolean {
  return Private.TERMINAL.has(state);
}

namespace Private {
  export const TERMINAL: ReadonlySet<ExperimentState> = new Set<ExperimentState>([
    'COMPLETED',
    'CANCELED',
    'ERROR'
  ]);
}
