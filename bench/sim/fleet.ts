/**
 * The simulated fleet: its options, the hosts drawn from them (link rates,
 * when each joins and leaves) and the Kumar–Ross bound for those rates.
 */
import { Rng } from '../chaos/rng.js';

/** A kind of link: the share of hosts that have it, and its rates in bytes/s. */
export interface LinkClass {
  readonly share: number;
  readonly down: number;
  readonly up: number;
  readonly label: string;
}

export interface SimOptions {
  /** Peers downloading (the seed not counted). */
  readonly peers: number;
  readonly seed: number;
  /** Schedulers; each task lives on one, by rendezvous hashing on its ID. */
  readonly schedulers: number;
  /** Tasks (files of `size` bytes); each host downloads one, dealt round-robin. */
  readonly tasks: number;
  readonly size: number;
  readonly pieceSize: number;
  readonly mix: readonly LinkClass[];
  /** The seed host's link (up = down), bytes/s; the origin sends to it at this rate too. */
  readonly seedRate: number;
  /** Share of the peers that join late, uniformly over [0, T_min]; the others join within `burstMs`. */
  readonly lateShare: number;
  readonly burstMs: number;
  /** Share of the peers that leave mid-download (never counted), and that leave 1 s after they complete. */
  readonly leaveShare: number;
  readonly leaveDoneShare: number;
  /** Kill the scheduler of the first task at this fraction of T_min (undefined: none dies). */
  readonly killAt: number | undefined;
  /** Hosts announce their upload rate (`upload.rate`); else the scheduler measures slow links. */
  readonly announce: boolean;
  /** The fluid model's step, ms (the daemon reports pieces every 20 ms). */
  readonly tickMs: number;
  /** The run ends at this many T_min, done or not. */
  readonly limit: number;
}

const G = 1e9 / 8;
const M = 1e6 / 8;

/** 60 % 10 Gbit/s, 30 % 1 Gbit/s, 10 % 1 Gbit/s down and 100 Mbit/s up. */
export const DEFAULT_MIX: readonly LinkClass[] = [
  { share: 0.6, down: 10 * G, up: 10 * G, label: '10G' },
  { share: 0.3, down: 1 * G, up: 1 * G, label: '1G' },
  { share: 0.1, down: 1 * G, up: 100 * M, label: '1G/100M' },
];

export const DEFAULTS: SimOptions = {
  peers: 10_000,
  seed: 1,
  schedulers: 3,
  tasks: 1,
  size: 2 * 1024 ** 3,
  pieceSize: 4 * 1024 ** 2,
  mix: DEFAULT_MIX,
  seedRate: 10 * G,
  lateShare: 0.1,
  burstMs: 1000,
  leaveShare: 0.01,
  leaveDoneShare: 0.05,
  killAt: undefined,
  announce: true,
  tickMs: 20,
  limit: 20,
};

/** "10G", "100M", "1G/100M" (down/up), in bits/s, as bytes/s. */
export function parseLink(text: string): { down: number; up: number } {
  const rate = (s: string): number => {
    const m = /^(\d+(?:\.\d+)?)([KMG])$/i.exec(s.trim());
    if (m === null) throw new RangeError(`a link rate like 10G or 100M, not ${s}`);
    return (Number(m[1]) * { K: 1e3, M: 1e6, G: 1e9 }[m[2]!.toUpperCase() as 'K' | 'M' | 'G']) / 8;
  };
  const [down, up] = text.split('/');
  return { down: rate(down!), up: rate(up ?? down!) };
}

/** "0.6:10G,0.3:1G,0.1:1G/100M" as link classes. */
export function parseMix(text: string): LinkClass[] {
  return text.split(',').map((part) => {
    const [share, link] = part.split(':');
    const s = Number(share);
    if (!(s > 0) || link === undefined) throw new RangeError(`a mix like 0.6:10G,0.4:1G, not ${text}`);
    return { share: s, ...parseLink(link), label: link };
  });
}

export interface SimHost {
  readonly index: number;
  readonly down: number;
  readonly up: number;
  readonly label: string;
  readonly task: number;
  readonly joinAt: number;
  /** Leaves mid-download at this time (ms), unless done. */
  readonly leaveAt: number | undefined;
  /** Leaves 1 s after it completes. */
  readonly leavesWhenDone: boolean;
}

/** Kumar–Ross: the least time any scheme needs, s: max(F/u_s, F/d_min, N F / (u_s + Σ u_i)). */
export function kumarRoss(size: number, serverUp: number, hosts: readonly { down: number; up: number }[]): number {
  let dMin = Infinity;
  let upSum = serverUp;
  for (const h of hosts) {
    dMin = Math.min(dMin, h.down);
    upSum += h.up;
  }
  return Math.max(size / serverUp, size / dMin, (hosts.length * size) / upSum);
}

/** The hosts of a run, drawn with its seed; `tMin` (ms) places the late joiners and departures. */
export function drawHosts(options: SimOptions, tMinMs: (rates: readonly { down: number; up: number }[]) => number): SimHost[] {
  const rng = new Rng(options.seed);
  const total = options.mix.reduce((s, c) => s + c.share, 0);
  const rates = Array.from({ length: options.peers }, () => {
    let x = rng.next() * total;
    for (const c of options.mix) {
      if ((x -= c.share) < 0) return c;
    }
    return options.mix[options.mix.length - 1]!;
  });
  const tMin = tMinMs(rates);
  return rates.map((c, index) => {
    const late = rng.next() < options.lateShare;
    const joinAt = late ? rng.next() * tMin : rng.next() * options.burstMs;
    const leaves = rng.next() < options.leaveShare;
    return {
      index,
      down: c.down,
      up: c.up,
      label: c.label,
      task: index % options.tasks,
      joinAt,
      leaveAt: leaves ? joinAt + (0.1 + 0.8 * rng.next()) * tMin : undefined,
      leavesWhenDone: rng.next() < options.leaveDoneShare,
    };
  });
}
