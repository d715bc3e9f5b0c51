import { setTimeout as sleep } from 'node:timers/promises';

export interface BackoffPolicy {
  /** Delay before the first retry, in ms; doubles on each retry. */
  readonly baseMs: number;
  readonly maxMs: number;
}

/**
 * Delay before retry number `retry` (0-based): exponential with "equal jitter"
 * (half fixed, half random), or what the origin asked for (Retry-After), capped at maxMs.
 */
export function backoffDelay(policy: BackoffPolicy, retry: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(policy.maxMs, retryAfterMs);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** retry);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts; leaves no timer behind. */
export async function wait(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal });
}
