/**
 * The last step of a download, once every piece is held: a task asked for by
 * digest is checked whole against it (each piece was verified already, but
 * against digests the swarm agreed on, not the one the user gave), then the
 * task is marked complete in the store.
 */
import { ShoalError } from '../../common/errors.js';
import { redactUrl } from '../../common/ids.js';
import type { PieceStore } from '../storage/store.js';
import type { StoredTask } from '../storage/stored-task.js';
import { verifyContent } from '../storage/verify.js';

export interface FinishInput {
  store: PieceStore;
  task: StoredTask;
  url: string;
  /** `sha256:<hex>`, or '' when the task was not asked for by digest. */
  digest: string;
  signal: AbortSignal;
}

/** Throws DIGEST_MISMATCH (every piece dropped, so they are fetched again) or STORAGE. */
export async function finishTask({ store, task, url, digest, signal }: FinishInput): Promise<void> {
  if (digest !== '' && !(await verifyContent(task.path, digest, signal))) {
    await store.invalidate(task);
    throw new ShoalError('DIGEST_MISMATCH', `content of ${redactUrl(url)} does not match ${digest}`);
  }
  await store.markComplete(task);
}
