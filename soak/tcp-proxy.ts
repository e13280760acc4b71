/**
 * A small in-process TCP proxy between the ORM and PostgreSQL that can cut a connection after a
 * chosen number of bytes, so a test or the soak run can drop the socket at any point of a call:
 * in the middle of a message, after a statement was sent but before its answer came back, or
 * after COMMIT reached the server but before the client heard of it.
 *
 * @module
 */
import net from 'node:net';

/** Which bytes count towards a cut: client to server (`up`), server to client (`down`), or both. */
export type CutDirection = 'up' | 'down' | 'any';

/** What the proxy has done so far. */
export interface ProxyStats {
  /** Client connections accepted. */
  connections: number;
  /** Bytes forwarded from clients to the server. */
  bytesUp: number;
  /** Bytes forwarded from the server to clients. */
  bytesDown: number;
  /** Connections cut on purpose. */
  cuts: number;
}

interface Pair {
  client: net.Socket;
  server: net.Socket;
}

interface ArmedCut {
  /** Bytes still to forward before the cut, or null for a cut on a match. */
  remaining: number | null;
  /** Cut right after these bytes pass (searched within one chunk), plus `extra` bytes. */
  match: Buffer | null;
  extra: number;
  direction: CutDirection;
  resolve: (cut: boolean) => void;
}

/**
 * Forwards every connection to `target` byte for byte until told to cut.
 *
 * @example
 * ```ts
 * const proxy = await TcpProxy.start('postgres://u@127.0.0.1:5432/db');
 * const orm = await MikroORM.init(createConfig(proxy.url));
 * proxy.cutAfter(120);          // the 120th byte from now, on whichever connection carries it, is the last
 * ```
 */
export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  private armed: ArmedCut | null = null;
  private readonly counters: ProxyStats = { connections: 0, bytesUp: 0, bytesDown: 0, cuts: 0 };

  private constructor(
    private readonly server: net.Server,
    private readonly targetUrl: URL,
    /** The local port the proxy listens on. */
    readonly port: number,
    /** Milliseconds every chunk is held in each direction (a network link's one-way delay). */
    readonly delayMs = 0,
  ) {}

  /**
   * Starts a proxy on a free local port in front of the server of `databaseUrl`. With `delayMs`,
   * every chunk is forwarded that many ms after it arrived, in order, in both directions: a link
   * with that one-way latency (the bench's network scenario; cuts are for the undelayed proxy).
   */
  static async start(databaseUrl: string, options: { delayMs?: number } = {}): Promise<TcpProxy> {
    const target = new URL(databaseUrl);
    const host = target.hostname || '127.0.0.1';
    const port = Number(target.port || 5432);
    const listener = net.createServer();
    const proxy = await new Promise<TcpProxy>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(0, '127.0.0.1', () => {
        const address = listener.address() as net.AddressInfo;
        resolve(new TcpProxy(listener, target, address.port, Math.max(0, options.delayMs ?? 0)));
      });
    });
    listener.on('connection', (client) => proxy.accept(client, host, port));
    return proxy;
  }

  /** The target URL with host and port replaced by the proxy's. */
  get url(): string {
    const url = new URL(this.targetUrl.toString());
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** Rewrites any URL of the same server (another database, other options) to go through the proxy. */
  rewrite(databaseUrl: string): string {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** A snapshot of the counters. */
  get stats(): ProxyStats {
    return { ...this.counters };
  }

  /** Connections open right now. */
  get openConnections(): number {
    return this.pairs.size;
  }

  /**
   * Arms one cut: the connection that carries the `bytes`-th byte (counted in `direction`, over all
   * connections, from now) forwards exactly that many and is then closed on both sides.
   * `bytes = 0` cuts the next connection that carries anything. Replaces an earlier armed cut.
   *
   * @returns a promise that resolves true when the cut happened, false when it was disarmed
   */
  cutAfter(bytes: number, direction: CutDirection = 'any'): Promise<boolean> {
    this.armed?.resolve(false);
    return new Promise((resolve) => {
      this.armed = { remaining: Math.max(0, Math.floor(bytes)), match: null, extra: 0, direction, resolve };
    });
  }

  /**
   * Arms one cut right after `text` passes in `direction` (plus `extra` more bytes of the same
   * chunk), whatever came before: e.g. `cutAfterMatch('COMMIT', 'up')` lets COMMIT reach the server
   * and loses its answer. The text must arrive within one chunk, which holds for the short
   * protocol messages of PostgreSQL on a local socket.
   *
   * @returns a promise that resolves true when the cut happened, false when it was disarmed
   */
  cutAfterMatch(text: string, direction: 'up' | 'down', extra = 0): Promise<boolean> {
    this.armed?.resolve(false);
    return new Promise((resolve) => {
      this.armed = { remaining: null, match: Buffer.from(text, 'utf8'), extra: Math.max(0, Math.floor(extra)), direction, resolve };
    });
  }

  /** Cancels an armed cut. */
  disarm(): void {
    this.armed?.resolve(false);
    this.armed = null;
  }

  /** True while a cut is armed and has not fired. */
  get isArmed(): boolean {
    return this.armed !== null;
  }

  /** Cuts every open connection now. */
  cutAll(): number {
    let n = 0;
    for (const pair of [...this.pairs]) {
      this.cut(pair);
      n++;
    }
    return n;
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.disarm();
    for (const pair of [...this.pairs]) {
      pair.client.destroy();
      pair.server.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket, host: string, port: number): void {
    this.counters.connections++;
    const server = net.connect({ host, port });
    const pair: Pair = { client, server };
    this.pairs.add(pair);
    client.setNoDelay(true);
    server.setNoDelay(true);
    const forget = () => {
      this.pairs.delete(pair);
      client.destroy();
      server.destroy();
    };
    client.on('error', forget);
    server.on('error', forget);
    client.on('close', forget);
    server.on('close', forget);
    client.on('data', (chunk: Buffer) => this.forward(pair, chunk, 'up'));
    server.on('data', (chunk: Buffer) => this.forward(pair, chunk, 'down'));
  }

  private forward(pair: Pair, chunk: Buffer, direction: 'up' | 'down'): void {
    // After a cut, whatever was still in flight is dropped, like on a dead network path.
    if (!this.pairs.has(pair)) return;
    const to = direction === 'up' ? pair.server : pair.client;
    if (to.destroyed || to.writableEnded) return;
    const armed = this.armed;
    const counts = armed !== null && (armed.direction === 'any' || armed.direction === direction);
    const at = counts ? cutPosition(armed, chunk) : -1;
    if (armed && at >= 0) {
      // This chunk carries the chosen byte: forward up to it, then close both sides.
      const head = chunk.subarray(0, at);
      this.count(direction, head.length);
      this.armed = null;
      this.counters.cuts++;
      if (head.length > 0) to.write(head);
      this.cut(pair);
      armed.resolve(true);
      return;
    }
    if (armed && counts && armed.remaining !== null) armed.remaining -= chunk.length;
    this.count(direction, chunk.length);
    if (this.delayMs > 0) {
      // Timers of equal delay fire in the order they were set, so the stream stays in order.
      setTimeout(() => {
        if (!to.destroyed && !to.writableEnded) to.write(chunk);
      }, this.delayMs);
      return;
    }
    to.write(chunk);
  }

  private count(direction: 'up' | 'down', n: number): void {
    if (direction === 'up') this.counters.bytesUp += n;
    else this.counters.bytesDown += n;
  }

  private cut(pair: Pair): void {
    this.pairs.delete(pair);
    // end() flushes what was written before the FIN; the peer sees a connection that stops
    // mid-stream, exactly like a dropped network path.
    pair.server.end();
    pair.client.end();
    pair.server.destroySoon();
    pair.client.destroySoon();
  }
}

/** Where in `chunk` an armed cut falls (bytes to forward first), or -1 when not in this chunk. */
function cutPosition(armed: ArmedCut, chunk: Buffer): number {
  if (armed.remaining !== null) return chunk.length >= armed.remaining ? armed.remaining : -1;
  const found = armed.match ? chunk.indexOf(armed.match) : -1;
  return found < 0 ? -1 : Math.min(chunk.length, found + (armed.match?.length ?? 0) + armed.extra);
}
