/**
 * The shape of the source tree, checked: imports point down (no cycles, type
 * imports included; nothing under a src/daemon subfolder imports the daemon
 * itself), and files hold one concept each (none outside src/gen over 400
 * lines). Reads the files; runs nothing.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');
const MAX_LINES = 400;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'gen' && dir === SRC ? [] : sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Static imports and re-exports (type-only ones too) of a file, as absolute .ts paths inside src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'(\.[^']+)'/gm)) {
    const target = resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts'));
    if (target.startsWith(SRC) && !target.startsWith(join(SRC, 'gen'))) found.push(target);
  }
  return found;
}

/** Strongly connected components with more than one file (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const stack: string[] = [];
  const onStack = new Set<string>();
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indices.get(w)!));
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) out.push(component.map((f) => relative(ROOT, f)).sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return out;
}

describe('architecture', () => {
  const files = sources(SRC);
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it('reads the tree it checks', () => {
    assert.ok(files.length > 50, `only ${files.length} source files found`);
    assert.ok([...graph.values()].some((targets) => targets.length > 0), 'no imports found: the pattern is broken');
  });

  it('has no import cycles', () => {
    assert.deepEqual(cycles(graph), []);
  });

  it('a cycle is found when there is one (the check bites)', () => {
    assert.deepEqual(cycles(new Map([['/a', ['/b']], ['/b', ['/c']], ['/c', ['/a']], ['/d', ['/a']]])).length, 1);
  });

  it('nothing under a src/daemon subfolder imports the daemon itself', () => {
    const daemon = join(SRC, 'daemon', 'daemon.ts');
    const offenders = files.filter((f) => dirname(f) !== join(SRC, 'daemon') && f.startsWith(join(SRC, 'daemon')) && graph.get(f)!.includes(daemon));
    assert.deepEqual(offenders.map((f) => relative(ROOT, f)), []);
  });

  it(`no source file outside src/gen is over ${MAX_LINES} lines`, () => {
    const long = files.map((f) => ({ f: relative(ROOT, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 })).filter((x) => x.lines > MAX_LINES);
    assert.deepEqual(long, []);
  });
});
