/**
 * What a miner's object that cannot be read says about the miner. The orchestrator saw each one
 * in the store when the miner reported it (an item's output, an epoch's gradient upload), so an
 * object that is gone since (retention pruned its epoch while the audit waited for a slow
 * validator, or the store lost it) or that the store will not deliver (a failing link, a URL
 * that expired while the audit queued) says nothing about the miner: the validator abstains.
 * Bytes that arrive but are wrong (hash, size, shape, NaN) fail the miner.
 */
const NOT_THE_MINERS = new Set(['E_NOT_FOUND', 'E_TRANSFER_FAILED', 'E_URL_EXPIRED']);

/** The verdict on an unreadable object: null to abstain, false to fail the miner. */
export function verdictOnUnreadable(code: string): false | null {
  return NOT_THE_MINERS.has(code) ? null : false;
}

/** How the verdict's detail names it. */
export function unreadableDetail(what: string, code: string, message: string): string {
  const state = verdictOnUnreadable(code) === null ? 'unreachable' : 'unusable';
  return `${what} is ${state} (${code}): ${message}`;
}
