/**
 * A TCP relay in front of the origin that resets connections: after a
 * response has carried `after` bytes toward the client, both sides are torn
 * down with a TCP RST (the origin fixture's own `drop` ends a body with a
 * FIN, which is a truncation). Resets the next `count` connections that get
 * that far; counts those it reset, so the scenario knows the fault landed.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export class ResetRelay {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #remaining = 0;
  #after = 0;
  resets = 0;
  port = 0;

  constructor(upstreamPort: number) {
    this.#server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort });
      this.#sockets.add(client).add(upstream);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => (this.#sockets.delete(client), upstream.destroy()));
      upstream.on('close', () => (this.#sockets.delete(upstream), client.destroy()));
      client.pipe(upstream);
      let sent = 0;
      upstream.on('data', (chunk: Buffer) => {
        if (this.#remaining > 0 && sent + chunk.length >= this.#after) {
          this.#remaining--;
          this.resets++;
          client.write(chunk.subarray(0, Math.max(0, this.#after - sent)), () => {
            client.resetAndDestroy();
            upstream.destroy();
          });
          upstream.pause();
          return;
        }
        sent += chunk.length;
        if (!client.write(chunk)) {
          upstream.pause();
          client.once('drain', () => upstream.resume());
        }
      });
    });
  }

  /** Resets the next `count` connections once they have carried `after` bytes to the client (headers included). */
  arm(after: number, count: number): void {
    this.#after = after;
    this.#remaining = count;
  }

  async start(): Promise<void> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    const address = this.#server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : 0;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
