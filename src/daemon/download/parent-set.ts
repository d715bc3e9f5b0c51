/**
 * The parents a download was given by the scheduler, with a connection to
 * each, and the ones it ruled out (a corrupt piece, repeated failures): a
 * parent dropped is not taken back when the scheduler lists it again.
 */
import type { DownloadSettings } from '../../common/config/schema.js';
import type { TlsMaterial } from '../../identity/tls.js';
import { ParentConn, type ParentInfo } from './parent.js';

export class ParentSet {
  readonly #settings: Pick<DownloadSettings, 'perParent' | 'protocol'>;
  readonly #tls: TlsMaterial | undefined;
  readonly #parents = new Map<string, ParentConn>();
  readonly #blocked = new Set<string>();

  /** `tls`: connect to parents with the cluster's mutual TLS. */
  constructor(settings: Pick<DownloadSettings, 'perParent' | 'protocol'>, tls: TlsMaterial | undefined) {
    this.#settings = settings;
    this.#tls = tls;
  }

  get size(): number {
    return this.#parents.size;
  }

  get(peerId: string): ParentConn | undefined {
    return this.#parents.get(peerId);
  }

  values(): ParentConn[] {
    return [...this.#parents.values()];
  }

  /**
   * The scheduler's list replaces the set: parents no longer listed leave
   * (their connections close once their fetches end, `released`), known
   * ones take their new stripes, new ones are connected to.
   */
  update(list: readonly ParentInfo[]): void {
    const wanted = new Set(list.map((p) => p.peerId));
    for (const [id, parent] of this.#parents) {
      if (wanted.has(id)) continue;
      this.#parents.delete(id);
      if (parent.inflight === 0) parent.close();
    }
    for (const info of list) {
      if (this.#blocked.has(info.peerId)) continue;
      const known = this.#parents.get(info.peerId);
      if (known !== undefined) {
        known.setStripes(info.stripes ?? 0, info.stripeMask ?? 0);
        continue;
      }
      const { peerId, hostId, ip, port, seed } = info;
      const parent = new ParentConn(
        { peerId, hostId, ip, port, seed, stripes: info.stripes ?? 0, stripeMask: info.stripeMask ?? 0, identity: info.identity ?? '' },
        this.#settings.perParent,
        this.#settings.protocol,
        this.#tls,
      );
      this.#parents.set(peerId, parent);
    }
  }

  /** Rules a parent out for the rest of the download. */
  drop(parent: ParentConn): void {
    this.#blocked.add(parent.info.peerId);
    if (this.#parents.get(parent.info.peerId) === parent) this.#parents.delete(parent.info.peerId);
  }

  /** A fetch from `parent` ended: a parent that left the set is closed once it has none in flight. */
  released(parent: ParentConn): void {
    if (this.#parents.get(parent.info.peerId) !== parent && parent.inflight === 0) parent.close();
  }

  close(): void {
    for (const parent of this.#parents.values()) parent.close();
    this.#parents.clear();
  }
}
