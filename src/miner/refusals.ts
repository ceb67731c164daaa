/** How a miner takes the orchestrator's refusals: the few it stops on, the rest it carries on through. */

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
