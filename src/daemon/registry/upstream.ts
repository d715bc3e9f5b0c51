/**
 * Which registry a mirror request goes to: containerd's `ns=<host>` query
 * parameter, else the `X-Shoal-Registry` (or Dragonfly's `X-Dragonfly-Registry`)
 * header, a host or a URL, else the configured default. Pure: no sockets.
 *
 * The registries are an allowlist: the configured entries and the default
 * upstream. A request naming any other is refused (UPSTREAM_NOT_ALLOWED)
 * before any request leaves the mirror, so a client cannot point it at a
 * registry of its own choosing (one that answers yes to every access check).
 * A host resolves to its entry's URL (`docker.io` to Docker Hub's API host);
 * plain HTTP only where the operator said so (`insecure: true`, or an
 * http:// URL for the default upstream).
 */
import { ShoalError } from '../../common/errors.js';

export interface UpstreamEntry {
  /** The registry host as clients name it: `docker.io`, `ghcr.io`, `127.0.0.1:5000`. */
  host: string;
  /** Where it is served; default https://<host> (http://<host> with insecure). */
  url?: string | undefined;
  /** Allow plain HTTP. Default false. */
  insecure?: boolean | undefined;
  /** Extra CA certificates (PEM text) for this registry's TLS. */
  ca?: string | undefined;
}

export interface Upstream {
  /** The registry host as clients name it (the entry's host, or the URL's host). */
  readonly host: string;
  /** scheme://host[:port], no trailing slash. */
  readonly origin: string;
  /** Docker Hub: single-component names get `library/`. */
  readonly dockerHub: boolean;
  /** Extra CA (PEM) for this upstream, when configured. */
  readonly ca: string | undefined;
}

export const DOCKER_HUB = 'https://registry-1.docker.io';
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

export function isRegistryHost(value: string): boolean {
  return value.length <= 261 && HOST.test(value);
}

function invalid(message: string): ShoalError {
  return new ShoalError('UPSTREAM_INVALID', message);
}

function notAllowed(registry: string): ShoalError {
  return new ShoalError('UPSTREAM_NOT_ALLOWED', `registry ${JSON.stringify(registry.slice(0, 100))} is not one this mirror serves (mirror.upstreams, --upstream)`);
}

function dockerHub(): Upstream {
  return { host: 'docker.io', origin: DOCKER_HUB, dockerHub: true, ca: undefined };
}

function parseOrigin(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`${what} ${JSON.stringify(value.slice(0, 200))} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`${what} must be an http:// or https:// URL`);
  if (url.username !== '' || url.password !== '') throw invalid(`${what} must not carry credentials`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw invalid(`${what} must be scheme://host[:port] with no path or query`);
  }
  return url;
}

export interface UpstreamResolverOptions {
  upstreams?: readonly UpstreamEntry[];
  /** A registry host (`docker.io`) or URL (`https://registry.internal`). */
  defaultUpstream?: string | undefined;
}

export class UpstreamResolver {
  readonly #byHost = new Map<string, Upstream & { insecure: boolean }>();
  readonly #default: Upstream | undefined;

  constructor(options: UpstreamResolverOptions) {
    for (const entry of options.upstreams ?? []) {
      const host = entry.host.toLowerCase();
      if (!isRegistryHost(host)) throw new ShoalError('CONFIG_INVALID', `mirror upstream host ${JSON.stringify(entry.host)} is not HOST or HOST:PORT`);
      const insecure = entry.insecure === true;
      let origin: string;
      if (entry.url !== undefined) {
        const url = parseOrigin(entry.url, `mirror upstream ${host}: url`);
        if (url.protocol === 'http:' && !insecure) {
          throw new ShoalError('CONFIG_INVALID', `mirror upstream ${host}: url ${url.origin} is plain HTTP; set insecure: true to allow it`);
        }
        origin = url.origin;
      } else {
        origin = DOCKER_HUB_HOSTS.has(host) ? DOCKER_HUB : `${insecure ? 'http' : 'https'}://${host}`;
      }
      this.#byHost.set(host, { host, origin, dockerHub: isDockerHub(host, origin), ca: entry.ca, insecure });
    }
    const d = options.defaultUpstream;
    if (d !== undefined && d !== '') {
      if (/^https?:\/\//i.test(d)) {
        // The operator's own URL: plain HTTP here is their explicit choice.
        const url = parseOrigin(d, 'default upstream');
        const entry = this.#byOrigin(url.origin) ?? this.#byHost.get(url.host);
        this.#default = entry ?? { host: url.host, origin: url.origin, dockerHub: isDockerHub(url.host, url.origin), ca: undefined };
      } else {
        const host = d.toLowerCase();
        if (!isRegistryHost(host)) throw new ShoalError('CONFIG_INVALID', `default upstream ${JSON.stringify(d.slice(0, 100))} is not a registry HOST or HOST:PORT`);
        this.#default = this.#byHost.get(host) ?? (DOCKER_HUB_HOSTS.has(host) ? dockerHub() : { host, origin: `https://${host}`, dockerHub: false, ca: undefined });
      }
      if (!this.#byHost.has(this.#default.host)) this.#byHost.set(this.#default.host, { ...this.#default, insecure: this.#default.origin.startsWith('http:') });
    }
  }

  get defaultUpstream(): Upstream | undefined {
    return this.#default;
  }

  /** Every configured upstream (for their CAs). */
  entries(): Upstream[] {
    return [...this.#byHost.values()];
  }

  /**
   * The upstream for one request. `ns` is containerd's query parameter,
   * `header` the X-Shoal-Registry / X-Dragonfly-Registry value.
   */
  resolve(ns: string | undefined, header: string | undefined): Upstream {
    if (ns !== undefined && ns !== '') return this.#fromHost(ns.toLowerCase(), 'ns');
    if (header !== undefined && header !== '') {
      const value = header.trim();
      if (!/^https?:\/\//i.test(value)) return this.#fromHost(value.toLowerCase(), 'registry header');
      const url = parseOrigin(value, 'registry header');
      const entry = this.#byOrigin(url.origin);
      if (entry !== undefined) return entry;
      const byHost = this.#byHost.get(url.host);
      if (byHost === undefined) throw notAllowed(url.origin);
      if (url.protocol !== 'http:') return byHost;
      if (byHost.insecure) return { ...byHost, origin: url.origin };
      throw invalid(`registry ${url.origin} is plain HTTP and not configured with insecure: true (mirror.upstreams)`);
    }
    if (this.#default === undefined) {
      throw invalid('no registry named by the request (ns= or X-Shoal-Registry) and no default upstream configured (--upstream)');
    }
    return this.#default;
  }

  #fromHost(host: string, what: string): Upstream {
    if (!isRegistryHost(host)) throw invalid(`${what} ${JSON.stringify(host.slice(0, 100))} is not a registry HOST or HOST:PORT`);
    const entry = this.#byHost.get(host) ?? (DOCKER_HUB_HOSTS.has(host) ? this.#dockerHubEntry() : undefined);
    if (entry === undefined) throw notAllowed(host);
    return entry;
  }

  /** Docker Hub under any of its names, when it is configured under one. */
  #dockerHubEntry(): Upstream | undefined {
    for (const entry of this.#byHost.values()) if (entry.dockerHub) return entry;
    return undefined;
  }

  #byOrigin(origin: string): Upstream | undefined {
    for (const entry of this.#byHost.values()) if (entry.origin === origin) return entry;
    return undefined;
  }
}

function isDockerHub(host: string, origin: string): boolean {
  return DOCKER_HUB_HOSTS.has(host) || origin === DOCKER_HUB || origin === 'https://index.docker.io';
}

/** The repository name as the upstream knows it: Docker Hub's official images live under `library/`. */
export function upstreamName(upstream: Upstream, name: string): string {
  return upstream.dockerHub && !name.includes('/') ? `library/${name}` : name;
}
