/**
 * Batches finished pieces into small PiecesFinished messages: one message per
 * `delayMs` or per `maxBatch` pieces, whichever comes first.
 */
import { packDigests } from '../../common/pieces.js';

export class PieceReporter {
  readonly #send: (numbers: number[], digests: Uint8Array) => void;
  readonly #delayMs: number;
  readonly #maxBatch: number;
  #numbers: number[] = [];
  #digests: Buffer[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Include digests (the reporter fetched from the origin, so its digests are authoritative). */
  withDigests = false;

  constructor(send: (numbers: number[], digests: Uint8Array) => void, delayMs = 20, maxBatch = 64) {
    this.#send = send;
    this.#delayMs = delayMs;
    this.#maxBatch = maxBatch;
  }

  add(n: number, digest: Buffer): void {
    this.#numbers.push(n);
    this.#digests.push(digest);
    if (this.#numbers.length >= this.#maxBatch) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#delayMs);
  }

  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#numbers.length === 0) return;
    const numbers = this.#numbers;
    const digests = this.withDigests ? packDigests(this.#digests) : new Uint8Array(0);
    this.#numbers = [];
    this.#digests = [];
    this.#send(numbers, digests);
  }

  close(): void {
    this.flush();
  }
}
