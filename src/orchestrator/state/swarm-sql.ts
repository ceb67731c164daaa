/** The SQL behind SwarmState, prepared once per database. */
import type { Statement } from 'better-sqlite3';
import type { DB } from './db.js';

export function swarmStatements(db: DB): Record<string, Statement> {
  const p = (sql: string) => db.prepare(sql);
  return {
    runGet: p('SELECT * FROM run WHERE id = 1'),
    runPut: p(
      'INSERT INTO run (id, name, config, config_hash, stages, created_at) VALUES (1, ?, ?, ?, ?, ?)',
    ),
    stageGet: p('SELECT * FROM stages WHERE stage = ?'),
    stageAll: p('SELECT * FROM stages ORDER BY stage'),
    stagePut: p(
      'INSERT OR REPLACE INTO stages (stage, epoch, phase, since, deadline, manifest, ' +
        'note) VALUES (@stage, @epoch, @phase, @since, @deadline, @manifest, @note)',
    ),
    epochGet: p('SELECT * FROM epochs WHERE epoch = ?'),
    epochPut: p('INSERT OR IGNORE INTO epochs (epoch, started_at) VALUES (?, ?)'),
    epochAllocate: p('UPDATE epochs SET allocated = allocated + ? WHERE epoch = ?'),
    epochClose: p('UPDATE epochs SET closed_at = ?, drain_deadline = ? WHERE epoch = ?'),
    epochDrained: p('UPDATE epochs SET drained_at = ? WHERE epoch = ?'),
    epochMergeMs: p('UPDATE epochs SET merge_ms = merge_ms + ? WHERE epoch = ?'),
    epochsDraining: p(
      'SELECT * FROM epochs WHERE closed_at IS NOT NULL AND drained_at IS NULL ORDER BY epoch',
    ),
    epochsRecent: p('SELECT * FROM epochs ORDER BY epoch DESC LIMIT ?'),
    memberGet: p('SELECT * FROM members WHERE miner = ?'),
    memberAll: p('SELECT * FROM members ORDER BY stage, joined_at, miner'),
    memberPut: p(
      'INSERT INTO members (miner, stage, requested, next_stage, joined_at, ' +
        'joined_epoch, last_seen) VALUES (?, ?, ?, NULL, ?, ?, ?)',
    ),
    memberSet: p('UPDATE members SET stage = ?, requested = ?, next_stage = ? WHERE miner = ?'),
    memberFlush: p(
      'UPDATE members SET last_seen = MAX(last_seen, ?), rate = COALESCE(?, rate), done = done + ? WHERE miner = ?',
    ),
    taskGet: p('SELECT * FROM tasks WHERE item = ? AND stage = ? AND kind = ?'),
    taskPut: p(
      'INSERT INTO tasks (item, stage, kind, epoch, first_sample, n, state, prefer, ' +
        "ready_at, input, gate) VALUES (?, ?, ?, ?, ?, ?, 'ready', ?, ?, ?, ?)",
    ),
    ungate: p('UPDATE tasks SET gate = NULL, ready_at = ? WHERE gate = ?'),
    manifestPut: p('INSERT OR REPLACE INTO manifests (stage, epoch, manifest) VALUES (?, ?, ?)'),
    manifestGet: p('SELECT manifest FROM manifests WHERE stage = ? AND epoch = ?'),
    taskLease: p(
      "UPDATE tasks SET state = 'leased', miner = ?, lease = ?, leased_at = ?, expires " +
        '= ?, due = ?, declared = NULL WHERE item = ? AND stage = ? AND kind = ?',
    ),
    taskFinish: p(
      'UPDATE tasks SET state = ?, output = ?, loss = ?, done_at = ? WHERE item = ? AND stage = ? AND kind = ?',
    ),
    taskSetState: p('UPDATE tasks SET state = ? WHERE item = ? AND stage = ? AND kind = ?'),
    readyPreferred: p(
      "SELECT * FROM tasks WHERE stage = ? AND epoch = ? AND state = 'ready' AND kind " +
        "= 'bwd' AND prefer = ? AND gate IS NULL ORDER BY ready_at, item LIMIT 1",
    ),
    readyBackward: p(
      "SELECT * FROM tasks WHERE stage = ? AND epoch = ? AND state = 'ready' AND kind " +
        "= 'bwd' AND gate IS NULL ORDER BY ready_at, item LIMIT 32",
    ),
    readyForward: p(
      "SELECT * FROM tasks WHERE stage = ? AND epoch = ? AND state = 'ready' AND kind " +
        "IN ('fwd', 'tail') AND gate IS NULL ORDER BY item LIMIT 1",
    ),
    openTasks: p(
      "SELECT item, stage, kind, miner, state FROM tasks WHERE state = 'leased' UNION " +
        "ALL SELECT item, stage, kind, miner, state FROM tasks WHERE state = 'held'",
    ),
    // A heartbeat renews a lease up to its due time, never beyond it.
    renew: p(
      'UPDATE tasks SET expires = MIN(?, COALESCE(due, ?)) WHERE item = ? AND stage = ' +
        "? AND kind = ? AND state = 'leased' AND expires >= ?",
    ),
    taskDeclare: p('UPDATE tasks SET declared = ? WHERE item = ? AND stage = ? AND kind = ?'),
    memberLapses: p('UPDATE members SET lapses = ?, lapsed_epoch = ? WHERE miner = ?'),
    expired: p("SELECT * FROM tasks WHERE state = 'leased' AND expires < ?"),
    leased: p("SELECT * FROM tasks WHERE state = 'leased' AND expires >= 0"),
    restartDues: p(
      'UPDATE tasks SET due = @now + MAX(due - leased_at, @lease), expires = @now + ' +
        "@lease WHERE state = 'leased' AND due IS NOT NULL AND expires >= 0",
    ),
    tightenDue: p(
      'UPDATE tasks SET due = ?, expires = MIN(expires, ?) WHERE item = ? AND stage = ' +
        "? AND kind = ? AND state = 'leased'",
    ),
    unlease: p(
      "UPDATE tasks SET state = 'ready', miner = NULL, lease = NULL, leased_at = NULL, " +
        'expires = NULL, due = NULL, declared = NULL, ready_at = ? WHERE item = ? AND ' +
        'stage = ? AND kind = ?',
    ),
    voidEpoch: p(
      "UPDATE tasks SET state = 'void' WHERE epoch = ? AND state IN ('ready', 'leased') RETURNING item, stage, kind",
    ),
    // A forward waiting for its backward was work done in good faith: it stays counted.
    closeEpochHeld: p(
      "UPDATE tasks SET state = 'done' WHERE epoch = ? AND state = 'held' RETURNING item, stage, kind",
    ),
    queue: p(
      "SELECT stage, kind, state, COUNT(*) AS n FROM tasks WHERE state IN ('ready', " +
        "'leased', 'held') GROUP BY stage, kind, state",
    ),
    recentLosses: p(
      "SELECT epoch, item, n, loss, done_at FROM tasks WHERE kind = 'tail' AND state " +
        "IN ('done', 'held') AND done_at IS NOT NULL ORDER BY done_at DESC, item DESC " +
        'LIMIT ?',
    ),
    tailSince: p("SELECT COALESCE(SUM(n), 0) AS n FROM tasks WHERE kind = 'tail' AND done_at >= ?"),
    itemPut: p(
      'INSERT INTO items (item, epoch, first_sample, n, windows, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    itemGet: p('SELECT * FROM items WHERE item = ?'),
    itemNext: p('SELECT COALESCE(MAX(item), -1) + 1 AS next FROM items'),
    upstreamExpiry: p(
      "SELECT MIN(expires) AS t FROM tasks WHERE stage < ? AND epoch = ? AND state = 'leased'",
    ),
    leaseHolders: p("SELECT DISTINCT miner FROM tasks WHERE state = 'leased'"),
    voidItemTasks: p(
      "UPDATE tasks SET state = 'void' WHERE item = ? AND state IN ('ready', 'leased') RETURNING item, stage, kind",
    ),
    closeItemHeld: p(
      "UPDATE tasks SET state = 'done' WHERE item = ? AND state = 'held' RETURNING item, stage, kind",
    ),
    fault: p(
      'INSERT INTO faults (epoch, stage, miner, kind, detail, at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    gradGet: p('SELECT * FROM gradients WHERE epoch = ? AND stage = ? AND miner = ?'),
    gradPut: p(
      'INSERT INTO gradients (epoch, stage, miner, key, size, sha256, n, partitions, ' +
        'uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    gradAll: p('SELECT * FROM gradients WHERE epoch = ? AND stage = ? ORDER BY miner'),
  };
}
