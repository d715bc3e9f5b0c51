/**
 * `--include` / `--exclude` globs of `get --recursive`, as with `aws s3 cp`
 * and rsync: the filters apply in the order given, the last one that matches
 * a name decides, and a name no filter matches is taken. `*` matches within a
 * segment, `**` across segments, `?` one character, `[abc]` / `[!abc]` a class.
 * A glob without `/` matches the last segment (`*.log` takes `a/b/c.log`);
 * one with `/` matches the whole relative path.
 */
import { ShoalError } from '../../common/errors.js';

export interface Filter {
  readonly kind: 'include' | 'exclude';
  readonly glob: string;
}

const MAX_GLOB = 1024;

export function globToRegExp(glob: string): RegExp {
  if (glob === '' || glob.length > MAX_GLOB) throw new ShoalError('USAGE', `a glob must be 1 to ${MAX_GLOB} characters`);
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else {
          out += '.*';
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) throw new ShoalError('USAGE', `unclosed [ in glob ${JSON.stringify(glob.slice(0, 100))}`);
      let body = glob.slice(i + 1, close);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      out += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
      i = close;
    } else {
      out += c.replace(/[.+^${}()|\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`, 'u');
}

/** A predicate over relative names for the filters, in order. */
export function compileFilters(filters: readonly Filter[]): (name: string) => boolean {
  const compiled = filters.map((f) => ({ include: f.kind === 'include', re: globToRegExp(f.glob), whole: f.glob.includes('/') }));
  return (name) => {
    const base = name.slice(name.lastIndexOf('/') + 1);
    let taken = true;
    for (const f of compiled) if (f.re.test(f.whole ? name : base)) taken = f.include;
    return taken;
  };
}
