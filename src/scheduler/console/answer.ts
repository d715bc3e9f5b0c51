/**
 * The one-line answer to "is P2P working" over the last ten minutes, from
 * what the scheduler saw: pieces peers reported getting from other peers and
 * from the origin, and the peers it sent to the origin. A seed fetching first
 * is the plan; a normal peer sent to the origin is a fallback, and the
 * answer says so. Pure.
 */
import type { RecentView, Verdict } from './types.js';

export interface RecentTotals {
  peerPieces: number;
  originPieces: number;
  backToSource: number;
  fallbacks: number;
}

function percent(part: number, whole: number): string {
  return `${Math.round((100 * part) / whole)}%`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function verdictOf(t: RecentTotals): Verdict {
  if (t.peerPieces + t.originPieces === 0 && t.backToSource === 0) return 'idle';
  return t.fallbacks > 0 ? 'degraded' : 'working';
}

export function recentView(t: RecentTotals, windowMs: number): RecentView {
  const verdict = verdictOf(t);
  const minutes = Math.round(windowMs / 60_000);
  const pieces = t.peerPieces + t.originPieces;
  const events =
    t.backToSource === 0
      ? 'no back-to-source event'
      : `${plural(t.backToSource, 'back-to-source event')} (${t.fallbacks === 0 ? 'seeds fetching first' : `${t.fallbacks} by normal peers`})`;
  const moved = pieces === 0 ? 'no piece moved' : `${plural(pieces, 'piece')}: ${percent(t.peerPieces, pieces)} from peers, ${percent(t.originPieces, pieces)} from the origin`;
  const head = verdict === 'idle' ? 'Idle' : verdict === 'working' ? 'P2P is working' : 'P2P is degraded';
  return { windowMs, ...t, verdict, line: `${head}: last ${minutes} minutes, ${moved}; ${events}` };
}
