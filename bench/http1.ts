/**
 * A lean HTTP/1.1 keep-alive client for the orchestrator benchmark's load generator: real
 * requests over real sockets, one request at a time per connection (no pipelining), replies
 * read by their content-length. It exists because undici's general machinery costs the
 * generator about as much CPU per request as the Ed25519 signature does, and on a two-core
 * host the generator's CPU is taken from the server it measures.
 *
 * Only what the orchestrator sends is understood: a status line, headers with content-length,
 * a body. Anything else (chunked replies, a closed connection) fails the request.
 */
import { connect, type Socket } from 'node:net';

export interface Http1Reply {
  status: number;
  body: string;
}

interface Pending {
  head: string;
  body: string | undefined;
  resolve: (r: Http1Reply) => void;
  reject: (e: Error) => void;
}

class Connection {
  private buf: Buffer = Buffer.alloc(0);
  private current: Pending | undefined;
  private readonly socket: Socket;

  constructor(
    host: string,
    port: number,
    private readonly onIdle: (c: Connection) => void,
  ) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (d: Buffer) => this.onData(d));
    const fail = (e: Error) => {
      const p = this.current;
      this.current = undefined;
      p?.reject(e);
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail(new Error('connection closed')));
  }

  send(p: Pending): void {
    this.current = p;
    this.socket.write(p.body === undefined ? p.head : p.head + p.body);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.toString('latin1', 0, end);
    const m = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!m) {
      this.current?.reject(new Error('reply without content-length'));
      this.socket.destroy();
      return;
    }
    const total = end + 4 + Number(m[1]);
    if (this.buf.length < total) return;
    const status = Number(head.slice(9, 12));
    const body = this.buf.toString('utf8', end + 4, total);
    this.buf = this.buf.subarray(total);
    const p = this.current!;
    this.current = undefined;
    this.onIdle(this);
    p.resolve({ status, body });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A fixed number of keep-alive connections to one origin; requests wait for a free one. */
export class Http1Pool {
  private idle: Connection[] = [];
  private all: Connection[] = [];
  private waiting: Pending[] = [];
  private readonly hostHeader: string;

  constructor(origin: string, connections: number) {
    const u = new URL(origin);
    this.hostHeader = u.host;
    const release = (c: Connection) => {
      const next = this.waiting.shift();
      if (next) c.send(next);
      else this.idle.push(c);
    };
    for (let i = 0; i < connections; i++) {
      const c = new Connection(u.hostname, Number(u.port), release);
      this.all.push(c);
      this.idle.push(c);
    }
  }

  request(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<Http1Reply> {
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n`;
    for (const k in headers) head += `${k}: ${headers[k]}\r\n`;
    if (body !== undefined) head += `content-length: ${Buffer.byteLength(body)}\r\n`;
    head += '\r\n';
    return new Promise((resolve, reject) => {
      const p: Pending = { head, body, resolve, reject };
      const c = this.idle.pop();
      if (c) c.send(p);
      else this.waiting.push(p);
    });
  }

  close(): void {
    for (const c of this.all) c.close();
  }
}
