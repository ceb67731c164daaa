/** How a miner takes the orchestrator's refusals: the few it stops on, the rest it carries on through. */
import { isIotaError } from '../errors.js';
import { ApiError, newRequestId, type SignedClient } from '../protocol/client.js';

/** Refusals no retry can fix: the miner stops and says why. */
export const FATAL = new Set([
  'E_VERSION_MISMATCH',
  'E_UNKNOWN_KEY',
  'E_NOT_ALLOWED',
  'E_FORBIDDEN',
  'E_BAD_SIGNATURE',
  'E_BAD_KEY_ID',
  'E_WRONG_RUN',
  'E_UNSIGNED',
]);
/** Answers to a gradient upload that mean there is nothing (more) to upload this epoch. */
export const UPLOAD_OVER = new Set(['E_NOTHING_TO_UPLOAD', 'E_ALREADY_UPLOADED', 'E_PHASE_CLOSED']);
/** Answers to an item's upload or report that mean the item is gone (its lease or epoch ended). */
export const ITEM_LOST = new Set([
  'E_LEASE_LOST',
  'E_PHASE_CLOSED',
  'E_BAD_LOSS',
  'E_ALREADY_DECLARED',
  // an upload URL lives as long as its lease (an activation) or its phase (a gradient)
  'E_URL_EXPIRED',
]);

/** Failures to read an item's input that are the store's or the link's, not the input's. */
export const UNREACHABLE_INPUT = new Set(['E_TRANSFER_FAILED', 'E_URL_EXPIRED']);

/**
 * What a step's failure means for the miner's loop (`failures`: in a row, this one included):
 * an answer about the swarm's state (a phase closed, a credit voided, a lease lost) is a legal
 * state, and the orchestrator restarting, the store failing or a network hiccup passes: say it,
 * wait, ask again.
 * Undefined when the miner should stop (a fatal answer, a bug, or 60 failures to reach it).
 */
export function afterFailure(
  e: unknown,
  failures: number,
): { message: string; waitMs: number } | undefined {
  if (e instanceof ApiError && e.status < 500 && !FATAL.has(e.code))
    return {
      message: `${e.code}: ${e.message}; carrying on`,
      waitMs: Math.min(2000, 100 * 2 ** Math.min(failures, 5)),
    };
  // The orchestrator unreachable, or the store (its own, when it is local) failing a transfer
  // after the transfer's retries: the item in hand is given up (its lease lapses to another).
  const passing =
    e instanceof ApiError
      ? e.status >= 500
      : isIotaError(e) && (e.code === 'E_UNREACHABLE' || e.code === 'E_TRANSFER_FAILED');
  if (!passing || failures > 60) return undefined;
  return {
    message: `${(e as Error).message}; retrying (${failures})`,
    waitMs: Math.min(5000, 250 * 2 ** Math.min(failures, 5)),
  };
}

/** A failure after which a state change may or may not have been applied: no answer, or a 5xx. */
export function outcomeUnknown(e: unknown): boolean {
  return e instanceof ApiError ? e.status >= 500 : isIotaError(e) && e.code === 'E_UNREACHABLE';
}

/**
 * A state change whose outcome must be known: the orchestrator may have applied it and gone
 * away before answering (a crash, a lost connection), so it is sent again, with the same request
 * id (a repeat gets the stored answer), until an answer comes or the orchestrator stays away
 * (afterFailure's bound). A report given up while its credit stood would leave the ledger
 * counting a gradient the miner threw away.
 */
export async function untilAnswered<T>(
  client: SignedClient,
  path: string,
  body: unknown,
  warn: (message: string) => void,
): Promise<T> {
  const id = newRequestId();
  for (let failures = 1; ; failures++) {
    try {
      return await client.post<T>(path, body, id);
    } catch (e) {
      const next = outcomeUnknown(e) ? afterFailure(e, failures) : undefined;
      if (!next) throw e;
      warn(`${path}: ${next.message}`);
      await new Promise((r) => setTimeout(r, next.waitMs));
    }
  }
}
