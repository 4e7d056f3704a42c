/**
 * The code the insert commands write into a new notebook cell. Names carry the experiment (and
 * trial) id, so inserting never rebinds a user's own `exp` or `model`: `exp_3`, `model_3_best`,
 * `model_3_t12`.
 */

/** Code that loads experiment `id`'s best checkpoint. */
export function bestCheckpointCode(id: number): string {
  return (
    'import det_jupyter\n\n' +
    `exp_${id} = det_jupyter.get_experiment(${id})\n` +
    `model_${id}_best = exp_${id}.best_checkpoint().load()`
  );
}

/** What names a checkpoint for {@link checkpointCode}. */
export interface ICheckpointRef {
  /** Its experiment. */
  experimentId: number;
  /** The trial that saved it. */
  trialId: number;
  /** Its UUID. */
  uuid: string;
  /** Steps trained when it was saved (a comment in the code). */
  steps: number;
}

/** Code that loads one checkpoint of one trial. */
export function checkpointCode(ref: ICheckpointRef): string {
  const e = ref.experimentId;
  const name = `${e}_t${ref.trialId}`;
  const uuid = JSON.stringify(ref.uuid);
  return (
    'import det_jupyter\n\n' +
    `exp_${e} = det_jupyter.get_experiment(${e})\n` +
    `ckpt_${name} = next(c for c in exp_${e}.checkpoints() if c.uuid == ${uuid})\n` +
    `model_${name} = ckpt_${name}.load()  # trial ${ref.trialId} after ${ref.steps} steps`
  );
}
