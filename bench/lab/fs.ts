/**
 * `--fs xfs|btrfs`: the lab's work directory (the origin's file, every host's
 * data directory and every output, for every scenario) on a file system of
 * its own, made in a sparse image file beside it, attached with
 * `losetup --direct-io=on` (so the image's backing file adds no second page
 * cache) and mounted over the work directory. Both kinds share blocks on a
 * reflink, which is how `shoal get` places its output there: the copy from
 * the cache that ext4 needs costs nothing (docs/design.md, "Output").
 */
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, rmSync } from 'node:fs';

export type LabFs = 'xfs' | 'btrfs';

export interface MountedFs {
  kind: LabFs;
  device: string;
  image: string;
  /** Unmounts, detaches and removes the image; safe to call twice. */
  remove: () => void;
}

const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();

export function parseLabFs(value: string): LabFs {
  if (value === 'xfs' || value === 'btrfs') return value;
  throw new Error(`--fs must be xfs or btrfs, not "${value}"`);
}

/** Mounts a new `kind` file system of `sizeBytes` (sparse) over the empty directory `dir`. */
export function mountWorkFs(dir: string, kind: LabFs, sizeBytes: number): MountedFs {
  const image = `${dir}.img`;
  const fd = openSync(image, 'w');
  try {
    ftruncateSync(fd, sizeBytes);
  } finally {
    closeSync(fd);
  }
  let device = '';
  let mounted = false;
  const remove = (): void => {
    if (mounted) {
      try {
        run('umount', [dir]);
      } catch {
        run('umount', ['-l', dir]);
      }
      mounted = false;
    }
    if (device !== '') {
      try {
        run('losetup', ['-d', device]);
      } catch {
        /* already gone */
      }
      device = '';
    }
    rmSync(image, { force: true });
  };
  try {
    device = run('losetup', ['--direct-io=on', '--find', '--show', image]);
    if (kind === 'xfs') run('mkfs.xfs', ['-q', '-f', '-m', 'reflink=1', device]);
    else run('mkfs.btrfs', ['-q', '-f', device]);
    run('mount', [device, dir]);
    mounted = true;
  } catch (err) {
    remove();
    throw new Error(`--fs ${kind}: ${(err as Error).message.split('\n')[0]} (needs root, a loop device, and ${kind === 'xfs' ? 'xfsprogs' : 'btrfs-progs'})`, { cause: err });
  }
  return {
    kind,
    get device() {
      return device;
    },
    image,
    remove,
  };
}
