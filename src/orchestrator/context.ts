/**
 * What the orchestrator's server offers its routes (the context every plugin receives) and
 * the options that build it; server.ts builds both, routes and auth only read them.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NodeConfig } from '../config/node.js';
import type { ParsedKey } from '../store/index.js';
import type { GroupCommitter } from './commit.js';
import type { Metrics } from './metrics.js';
import type { Participant, Repository, Role } from './state/repository.js';

/** Who is calling, as auth.ts verified it. */
export interface AuthInfo {
  key: string;
  nonce: string;
  timestamp: number;
  participant?: Participant;
}

/** What a route needs: 'none', 'signed' (any valid key: registration) or 'registered'. */
export type RouteAuth = 'none' | 'signed' | 'registered';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
    roles?: Role[];
  }
  interface FastifyRequest {
    auth?: AuthInfo;
    rawBody?: Buffer;
  }
  interface FastifySchema {
    /** one line for /openapi.json */
    description?: string;
  }
}

export interface RateLimits {
  ipPerSecond: number;
  ipBurst: number;
  keyPerSecond: number;
  keyBurst: number;
  /** new keys one address may register, per minute and at once */
  newKeysPerMinute: number;
  newKeysBurst: number;
  /** loopback addresses skip the address limits (benchmarks and tests on one machine) */
  exemptLoopback: boolean;
}

export interface OrchestratorOptions {
  run: string;
  version: string;
  repo: Repository;
  node: Pick<NodeConfig, 'validators' | 'admins' | 'allow_list'>;
  clock?: () => number;
  bodyLimit?: number;
  rateLimits?: Partial<RateLimits>;
  logger?: boolean;
  /** worker threads verifying signatures (default 1 on multi-core hosts, 0 = on the event loop) */
  verifyThreads?: number;
  /** sha256 of the run and model configs; clients that send another are refused */
  configHash?: string;
  /** extra route plugins (the object store's, the swarm's) */
  plugins?: Array<(app: FastifyInstance, ctx: ServerContext) => Promise<void> | void>;
  /** the group commit to use (assemble.ts makes it first, so others can commit through it) */
  committer?: GroupCommitter;
}

export interface ServerContext {
  run: string;
  version: string;
  repo: Repository;
  node: OrchestratorOptions['node'];
  clock: () => number;
  metrics: Metrics;
  configHash?: string;
  /** Runs a state change once per request id, atomically with its nonce and reply; resolves after commit. */
  mutate<T>(req: FastifyRequest, fn: () => T): Promise<T>;
  /**
   * Before a state change with side effects outside the database: refuses a replay (or a copy
   * still in flight) before them, and says whether this request id was answered before.
   */
  precheck(req: FastifyRequest): 'retry' | 'new';
  /** Runs a state change of the server's own (timers) in the group commit; resolves after commit. */
  commit<T>(fn: () => T): Promise<T>;
  /** Refuses (E_RATE_LIMITED) a new key from an address that registered too many lately. */
  admitNewKey(req: FastifyRequest): void;
  /** extra fields of a heartbeat's reply, computed in its transaction (the swarm renews leases) */
  onHeartbeat?: (key: string, now: number) => Record<string, unknown>;
  /**
   * Whether `caller` may upload this object (exact key, size and bytes), and until when: a
   * bound on the URL's expiry, or a refusal (the swarm: leases, phases, the shapes of the run).
   * Called again with `record` inside the request's transaction, to remember the declaration.
   */
  uploadScope?: (
    caller: string,
    key: ParsedKey,
    declared: { size: number; sha256: string },
    now: number,
    record: boolean,
  ) => number | undefined;
}
