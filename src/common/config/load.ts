/**
 * Configuration files (YAML) read and checked against the schema
 * (./schema.ts). Errors name the bad key. Command-line flags override the
 * file (src/cli/serve.ts).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { ShoalError } from '../errors.js';

function describeIssues(error: z.ZodError, file: string): string {
  return error.issues
    .map((issue) => {
      const key = issue.path.length === 0 ? '(top level)' : issue.path.join('.');
      return `${file}: ${key}: ${issue.message}`;
    })
    .join('\n');
}

/** Reads a YAML config file as an unvalidated object; an absent path gives `{}`. */
export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (path === undefined) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ShoalError('CONFIG_INVALID', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos !== undefined ? ` at line ${err.linePos[0].line}` : '';
    throw new ShoalError('CONFIG_INVALID', `${path}: not valid YAML${where}: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ShoalError('CONFIG_INVALID', `${path}: (top level): expected a mapping of keys to values`);
  }
  return raw as Record<string, unknown>;
}

/** Reads and validates a YAML config file; an absent path gives the defaults. */
export function loadConfig<S extends z.ZodType>(schema: S, path: string | undefined): z.infer<S> {
  return validateConfig(schema, readConfigFile(path), path ?? '(defaults)');
}

export function validateConfig<S extends z.ZodType>(schema: S, raw: unknown, label: string): z.infer<S> {
  const result = schema.safeParse(raw);
  if (!result.success) throw new ShoalError('CONFIG_INVALID', describeIssues(result.error, label));
  return result.data;
}
