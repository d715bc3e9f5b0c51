/**
 * What the console remembers of the scheduler's events (./../events.ts): the
 * last back-to-source events with their reasons (a ring buffer), and the
 * counts of the last ten minutes behind the "is P2P working" line. Bounded
 * whatever the swarm does.
 */
import type { SchedulerEvents, SourceSubject } from '../events.js';
import { recentView } from './answer.js';
import { RecentCounts } from './recent.js';
import type { RecentView } from './types.js';

export const JOURNAL_LIMITS = { events: 500, windowMs: 10 * 60_000, bucketMs: 10_000 } as const;

export interface SourceEvent extends SourceSubject {
  readonly at: number;
  readonly reason: string;
}

type Key = 'peerPieces' | 'originPieces' | 'backToSource' | 'fallbacks';
const KEYS: readonly Key[] = ['peerPieces', 'originPieces', 'backToSource', 'fallbacks'];

export class SwarmJournal implements SchedulerEvents {
  readonly #now: () => number;
  /** Oldest first, at most JOURNAL_LIMITS.events. */
  readonly #events: SourceEvent[] = [];
  readonly #recent = new RecentCounts<Key>(JOURNAL_LIMITS);

  constructor(now: () => number) {
    this.#now = now;
  }

  sentToSource(reason: string, subject: SourceSubject): void {
    const at = this.#now();
    this.#events.push({ ...subject, at, reason });
    if (this.#events.length > JOURNAL_LIMITS.events) this.#events.shift();
    this.#recent.add('backToSource', 1, at);
    if (!subject.seed) this.#recent.add('fallbacks', 1, at);
  }

  piecesReported(count: number, fromOrigin: boolean): void {
    this.#recent.add(fromOrigin ? 'originPieces' : 'peerPieces', count, this.#now());
  }

  registered(): void {}
  reannounced(): void {}
  seedTriggered(): void {}
  decided(): void {}

  /** The last `limit` back-to-source events, newest first. */
  events(limit: number): SourceEvent[] {
    return this.#events.slice(-limit).reverse();
  }

  recent(): RecentView {
    return recentView(this.#recent.totals(KEYS, this.#now()), JOURNAL_LIMITS.windowMs);
  }
}
