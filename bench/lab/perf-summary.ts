/**
 * `node --import tsx bench/lab/perf-summary.ts DIR/<scenario> [--top N] [--timeline S]`: where
 * the machine's CPU went during one lab scenario recorded with LAB_PERF=DIR
 * (./scenarios.ts, startPerf). Every sample of `perf script` is given to its
 * process's role (daemon (peers), get, aria2c (peers), scheduler, … from
 * <scenario>.procs.json; anything else by its command name) and to the first
 * category its call stack matches (page-cache writes, the output copy,
 * SHA-256, AES-GCM, socket calls, softirq, page faults, JIT, GC, JavaScript).
 * Prints each role's share of all samples and its categories, largest first.
 * `--timeline S`: also the samples of every S seconds by role, from the first
 * sample of a `shoal get` (the lab starts the gets when its clock starts), so
 * a phase where one role holds the machine (the gets' start-up) shows.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { roleOf } from './scenarios.js';

/** Stack patterns, tried in order: the first that matches names the sample's category. */
const CATEGORIES: Array<[string, RegExp]> = [
  ['output copy (copy_file_range)', /copy_file_range/],
  ['O_DIRECT write', /iomap_dio_rw|__iomap_dio_rw/],
  ['page-cache write (pwrite, write)', /ext4_buffered_write_iter|xfs_file_buffered_write|generic_perform_write|btrfs_buffered_write/],
  ['file read (pread)', /filemap_read/],
  ['SHA-256 / SHA-1', /sha256_block|sha1_compress|_nettle_sha1|sha1_block/],
  ['AES-GCM', /aesni|ghash|gcm128/i],
  ['socket receive (recvmsg, read)', /tcp_recvmsg|sock_recvmsg|sock_read_iter/],
  ['socket send (sendmsg, writev; veth, tbf)', /tcp_sendmsg|sock_sendmsg|sock_write_iter/],
  ['softirq (packets)', /handle_softirqs|net_rx_action/],
  ['page faults', /exc_page_fault/],
  ['process start and exit', /execve|exit_mmap|copy_process|load_elf_binary/],
  ['epoll', /epoll/],
  ['GC', /Scavenger|MarkCompact|ConcurrentMarking|Sweeper|Heap::/],
  ['JIT compile', /v8::internal::compiler|v8::internal::maglev|BaselineCompiler|Parser|Scanner|interpreter::Bytecode/],
  ['JavaScript', /Builtins_|JS:|v8::internal/],
  ['node and OpenSSL C++', /node::|ssl|SSL|EVP_|CRYPTO_/],
  ['libc', /malloc|_int_free|cfree|__mem/],
  ['kernel, other', /\[k\]|entry_SYSCALL|do_syscall/],
];

function categorize(frames: string[]): string {
  const stack = frames.join(' | ');
  for (const [name, re] of CATEGORIES) if (re.test(stack)) return name;
  return `other (${frames[0]?.slice(0, 40) ?? '?'})`;
}

function main(): number {
  const base = process.argv[2];
  if (base === undefined) {
    process.stderr.write('usage: perf-summary.ts DIR/<scenario> [--top N] [--timeline S]   (after LAB_PERF=DIR npm run lab …)\n');
    return 2;
  }
  const topAt = process.argv.indexOf('--top');
  const top = topAt > 0 ? Number(process.argv[topAt + 1]) : 8;
  const timelineAt = process.argv.indexOf('--timeline');
  const step = timelineAt > 0 ? Number(process.argv[timelineAt + 1]) : 0;
  if (!(step >= 0) || !Number.isFinite(step)) {
    process.stderr.write('--timeline takes seconds per row, e.g. 0.5\n');
    return 2;
  }
  let procs: Array<{ pid: number; name: string }> = [];
  try {
    procs = JSON.parse(readFileSync(`${base}.procs.json`, 'utf8')) as typeof procs;
  } catch {
    process.stderr.write(`no ${base}.procs.json: roles by command name only\n`);
  }
  const roleByPid = new Map(procs.map((p) => [String(p.pid), roleOf(p.name)]));
  const script = execFileSync('perf', ['script', '-i', `${base}.perf.data`, '-F', 'comm,pid,time,ip,sym'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const byRole = new Map<string, Map<string, number>>();
  const timed: Array<[number, string]> = [];
  let total = 0;
  for (const block of script.split('\n\n')) {
    const lines = block.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    if (lines.length < 2) continue;
    const [comm = '?', pid = '?', time = '0'] = lines[0]!.split(/\s+/);
    const frames = lines.slice(1).map((l) => l.replace(/^[0-9a-f]+\s+/, ''));
    const who = roleByPid.get(pid) ?? comm;
    if (step > 0) timed.push([Number.parseFloat(time), who]);
    const cats = byRole.get(who) ?? new Map<string, number>();
    byRole.set(who, cats);
    const cat = categorize(frames);
    cats.set(cat, (cats.get(cat) ?? 0) + 1);
    total++;
  }
  const pct = (n: number): string => `${((100 * n) / total).toFixed(1).padStart(5)} %`;
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  console.log(`${total} samples (cpu-clock; shares of all of them)`);
  for (const [who, cats] of [...byRole].sort((a, b) => sum(b[1]) - sum(a[1]))) {
    if (sum(cats) / total < 0.005) continue;
    console.log(`${pct(sum(cats))}  ${who}`);
    for (const [cat, n] of [...cats].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`   ${pct(n)}  ${cat}`);
  }
  if (step > 0) printTimeline(timed, step);
  return 0;
}

/** Per `step` seconds from the first get's first sample: each role's samples, most first (swapper is the idle cores). */
function printTimeline(samples: Array<[number, string]>, step: number): void {
  const start = samples.find(([, who]) => who.startsWith('get'))?.[0] ?? samples[0]?.[0] ?? 0;
  const rows = new Map<number, Map<string, number>>();
  for (const [t, who] of samples) {
    const row = Math.floor((t - start) / step);
    const counts = rows.get(row) ?? new Map<string, number>();
    rows.set(row, counts);
    counts.set(who, (counts.get(who) ?? 0) + 1);
  }
  console.log(`\nsamples per ${step} s from the first get's first sample (swapper: idle)`);
  for (const [row, counts] of [...rows].sort((a, b) => a[0] - b[0])) {
    const cells = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([who, n]) => `${who} ${n}`);
    console.log(`${(row * step).toFixed(1).padStart(6)} s  ${cells.join(', ')}`);
  }
}

process.exitCode = main();
