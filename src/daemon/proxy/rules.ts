/**
 * Which proxied requests go through P2P: the configured rules, regular
 * expressions tried in order against the request's absolute URL; the first
 * that matches decides (P2P, or straight to the origin with `direct`). No rule
 * matching: straight to the origin. Only a GET without a body can go P2P.
 * Pure: no sockets.
 */
import { ShoalError } from '../../common/errors.js';

export interface ProxyRule {
  /** A JavaScript regular expression, searched (not anchored) in the absolute URL. */
  regex: string;
  /** Matching URLs go straight to the origin instead of through P2P. Default false. */
  direct?: boolean | undefined;
}

export const RULE_LIMITS = { rules: 256, regexLength: 1024 } as const;

export type Decision = 'p2p' | 'direct';

export class ProxyRules {
  readonly #rules: ReadonlyArray<{ re: RegExp; direct: boolean }>;

  constructor(rules: readonly ProxyRule[]) {
    if (rules.length > RULE_LIMITS.rules) throw new ShoalError('CONFIG_INVALID', `proxy.rules: at most ${RULE_LIMITS.rules} rules`);
    this.#rules = rules.map((rule, i) => {
      if (rule.regex.length > RULE_LIMITS.regexLength) throw new ShoalError('CONFIG_INVALID', `proxy.rules.${i}.regex: longer than ${RULE_LIMITS.regexLength} characters`);
      try {
        return { re: new RegExp(rule.regex), direct: rule.direct === true };
      } catch (err) {
        throw new ShoalError('CONFIG_INVALID', `proxy.rules.${i}.regex: ${(err as Error).message}`);
      }
    });
  }

  /** How a request for `url` is served: P2P only for a matching rule without `direct`, and only for a bodiless GET. */
  decide(method: string, url: string, hasBody: boolean): Decision {
    if (method !== 'GET' || hasBody) return 'direct';
    for (const rule of this.#rules) if (rule.re.test(url)) return rule.direct ? 'direct' : 'p2p';
    return 'direct';
  }
}
