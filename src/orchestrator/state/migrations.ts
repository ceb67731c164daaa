/**
 * The schema of the orchestrator's database as numbered migrations (db.ts applies them in
 * order, once each). Migration i moves the schema from version i to i + 1. Never edit a
 * shipped one: append.
 */
export const MIGRATIONS: string[] = [
  `CREATE TABLE participants (
     id TEXT PRIMARY KEY,
     role TEXT NOT NULL CHECK (role IN ('miner', 'validator', 'admin')),
     registered_at INTEGER NOT NULL,
     last_seen INTEGER NOT NULL,
     info TEXT NOT NULL DEFAULT '{}'
   ) WITHOUT ROWID;
   CREATE TABLE nonces (
     key TEXT NOT NULL,
     nonce TEXT NOT NULL,
     ts INTEGER NOT NULL,
     PRIMARY KEY (key, nonce)
   ) WITHOUT ROWID;
   CREATE INDEX nonces_ts ON nonces (ts);
   CREATE TABLE requests (
     key TEXT NOT NULL,
     request_id TEXT NOT NULL,
     method TEXT NOT NULL,
     path TEXT NOT NULL,
     status INTEGER NOT NULL,
     reply TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (key, request_id)
   ) WITHOUT ROWID;
   CREATE INDEX requests_created ON requests (created_at);`,
  `CREATE TABLE uploads (
     key TEXT NOT NULL,
     caller TEXT NOT NULL,
     upload_id TEXT NOT NULL,
     plan TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (key, caller, upload_id)
   ) WITHOUT ROWID;`,
  // The swarm: the run, each stage's phase, epochs, stage membership, work items, their
  // tasks and leases, the sample ledger and the gradient uploads.
  `CREATE TABLE run (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     name TEXT NOT NULL,
     config TEXT NOT NULL,
     config_hash TEXT NOT NULL,
     stages INTEGER NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE stages (
     stage INTEGER PRIMARY KEY,
     epoch INTEGER NOT NULL,
     phase TEXT NOT NULL CHECK (phase IN ('training', 'uploading', 'merging')),
     since INTEGER NOT NULL,
     deadline INTEGER,
     manifest TEXT NOT NULL,
     note TEXT NOT NULL DEFAULT ''
   );
   CREATE TABLE epochs (
     epoch INTEGER PRIMARY KEY,
     started_at INTEGER NOT NULL,
     allocated INTEGER NOT NULL DEFAULT 0,
     closed_at INTEGER,
     drain_deadline INTEGER,
     drained_at INTEGER,
     merge_ms INTEGER NOT NULL DEFAULT 0
   );
   CREATE TABLE members (
     miner TEXT PRIMARY KEY,
     stage INTEGER NOT NULL,
     requested TEXT NOT NULL,
     next_stage INTEGER,
     joined_at INTEGER NOT NULL,
     joined_epoch INTEGER NOT NULL,
     last_seen INTEGER NOT NULL,
     rate REAL,
     done INTEGER NOT NULL DEFAULT 0
   ) WITHOUT ROWID;
   CREATE INDEX members_stage ON members (stage);
   CREATE TABLE items (
     item INTEGER PRIMARY KEY,
     epoch INTEGER NOT NULL,
     first_sample INTEGER NOT NULL,
     n INTEGER NOT NULL,
     windows TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX items_epoch ON items (epoch);
   CREATE TABLE tasks (
     item INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('fwd', 'bwd', 'tail')),
     epoch INTEGER NOT NULL,
     first_sample INTEGER NOT NULL,
     n INTEGER NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'held', 'done', 'void')),
     miner TEXT,
     prefer TEXT,
     lease TEXT UNIQUE,
     leased_at INTEGER,
     expires INTEGER,
     ready_at INTEGER NOT NULL,
     input TEXT NOT NULL,
     output TEXT,
     loss REAL,
     done_at INTEGER,
     gate INTEGER,
     PRIMARY KEY (item, stage, kind)
   ) WITHOUT ROWID;
   CREATE INDEX tasks_ready ON tasks (stage, epoch, kind, ready_at) WHERE state = 'ready';
   CREATE INDEX tasks_miner ON tasks (miner) WHERE state IN ('leased', 'held');
   CREATE INDEX tasks_expiry ON tasks (expires) WHERE state = 'leased';
   CREATE INDEX tasks_done ON tasks (done_at) WHERE kind = 'tail';
   CREATE TABLE ledger (
     item INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     epoch INTEGER NOT NULL,
     n INTEGER NOT NULL,
     state TEXT NOT NULL,
     miner TEXT,
     PRIMARY KEY (item, stage)
   ) WITHOUT ROWID;
   CREATE INDEX ledger_epoch ON ledger (epoch, stage, state);
   CREATE INDEX ledger_miner ON ledger (epoch, stage, miner, state);
   CREATE TABLE gradients (
     epoch INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     miner TEXT NOT NULL,
     key TEXT NOT NULL,
     size INTEGER NOT NULL,
     sha256 TEXT NOT NULL,
     n INTEGER NOT NULL,
     partitions TEXT NOT NULL,
     uploaded_at INTEGER NOT NULL,
     PRIMARY KEY (epoch, stage, miner)
   ) WITHOUT ROWID;
   CREATE TABLE merges (
     epoch INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     round INTEGER NOT NULL,
     step INTEGER NOT NULL CHECK (step IN (1, 2, 3, 4)),
     plan TEXT NOT NULL,
     excluded TEXT NOT NULL DEFAULT '{}',
     norm2 REAL,
     clip_factor REAL,
     started_at INTEGER NOT NULL,
     PRIMARY KEY (epoch, stage)
   ) WITHOUT ROWID;
   CREATE TABLE merge_jobs (
     epoch INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     round INTEGER NOT NULL,
     step INTEGER NOT NULL,
     partition INTEGER NOT NULL,
     merger TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('assigned', 'done', 'unavailable', 'reassigned')),
     result TEXT,
     assigned_at INTEGER NOT NULL,
     done_at INTEGER,
     PRIMARY KEY (epoch, stage, round, step, partition, merger)
   ) WITHOUT ROWID;
   CREATE INDEX merge_jobs_merger ON merge_jobs (merger, state);
   CREATE TABLE merge_results (
     epoch INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     round INTEGER NOT NULL,
     step INTEGER NOT NULL,
     partition INTEGER NOT NULL,
     result TEXT NOT NULL,
     PRIMARY KEY (epoch, stage, round, step, partition)
   ) WITHOUT ROWID;
   CREATE TABLE manifests (
     stage INTEGER NOT NULL,
     epoch INTEGER NOT NULL,
     manifest TEXT NOT NULL,
     PRIMARY KEY (stage, epoch)
   ) WITHOUT ROWID;
   CREATE TABLE standing (
     miner TEXT PRIMARY KEY,
     probation INTEGER NOT NULL,
     passes INTEGER NOT NULL DEFAULT 0,
     failures INTEGER NOT NULL DEFAULT 0,
     quarantined_at INTEGER
   ) WITHOUT ROWID;
   CREATE TABLE validations (
     id INTEGER PRIMARY KEY,
     epoch INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     item INTEGER NOT NULL,
     kind TEXT NOT NULL,
     miner TEXT NOT NULL,
     reason TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('open', 'assigned', 'passed', 'failed', 'void')),
     validator TEXT,
     expires INTEGER,
     rel_err REAL,
     detail TEXT,
     created_at INTEGER NOT NULL,
     done_at INTEGER
   );
   CREATE INDEX validations_state ON validations (state, id);
   CREATE INDEX validations_miner ON validations (miner, state);
   CREATE TABLE evals (
     epoch INTEGER PRIMARY KEY,
     state TEXT NOT NULL CHECK (state IN ('open', 'assigned', 'done')),
     validator TEXT,
     expires INTEGER,
     loss REAL,
     windows INTEGER,
     created_at INTEGER NOT NULL,
     done_at INTEGER
   );
   CREATE TABLE faults (
     id INTEGER PRIMARY KEY,
     epoch INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     miner TEXT NOT NULL,
     kind TEXT NOT NULL,
     detail TEXT NOT NULL,
     at INTEGER NOT NULL
   );`,
  // Nonces are checked in memory (Repository); the table only makes them survive a restart,
  // so it is a log in arrival order: appends, not inserts at random places of a (key, nonce) key.
  `ALTER TABLE nonces RENAME TO nonces_by_key;
   CREATE TABLE nonces (ts INTEGER NOT NULL, key TEXT NOT NULL, nonce TEXT NOT NULL);
   INSERT INTO nonces (ts, key, nonce) SELECT ts, key, nonce FROM nonces_by_key ORDER BY ts;
   DROP TABLE nonces_by_key;
   CREATE INDEX nonces_ts ON nonces (ts);`,
  // Stored replies are large (a work reply is most of a kilobyte): in a table keyed by
  // (key, request_id) a leaf held three, and every insert at a random place split pages.
  // Rows now go in arrival order and a small index finds them.
  `ALTER TABLE requests RENAME TO requests_by_key;
   CREATE TABLE requests (
     key TEXT NOT NULL,
     request_id TEXT NOT NULL,
     method TEXT NOT NULL,
     path TEXT NOT NULL,
     status INTEGER NOT NULL,
     reply TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   INSERT INTO requests (key, request_id, method, path, status, reply, created_at)
     SELECT key, request_id, method, path, status, reply, created_at FROM requests_by_key ORDER BY created_at;
   DROP TABLE requests_by_key;
   CREATE UNIQUE INDEX requests_key ON requests (key, request_id);
   CREATE INDEX requests_created ON requests (created_at);`,
  // Request ids start with the client's time (protocol/client.ts): indexed by the id first,
  // replies go in near the index's end, where (key, request_id) put each on a random page.
  `DROP INDEX requests_key;
   CREATE UNIQUE INDEX requests_id ON requests (request_id, key);`,
  // Fewer index pages per request. A tail task waiting for its report (done_at NULL) sat at the
  // NULL end of tasks_done and moved to the other end when done: now it enters once, when done.
  // An open ledger row (miner NULL) sat in ledger_miner too; and with the miner first the index
  // also answers "what does this miner still hold", which scanned the whole ledger.
  `DROP INDEX tasks_done;
   CREATE INDEX tasks_done ON tasks (done_at) WHERE kind = 'tail' AND done_at IS NOT NULL;
   DROP INDEX ledger_miner;
   CREATE INDEX ledger_miner ON ledger (miner, state, epoch, stage) WHERE miner IS NOT NULL;`,
  // Two more indexes that took a page of their own per request. Replies are stored in arrival
  // order, so the old ones are a prefix of the table and pruning needs no index on their time.
  // Every report of a miner on probation adds an open validation: by miner, each went in at a
  // random place; only verdicts are looked up by miner (open ones are read in the order of the
  // queue, through validations_state).
  `DROP INDEX requests_created;
   DROP INDEX validations_miner;
   CREATE INDEX validations_verdicts ON validations (miner, state) WHERE state IN ('passed', 'failed');`,
  // The tasks each miner holds are kept in memory (SwarmState), read at open: leased ones
  // through tasks_expiry, held ones through this index, no longer one by miner.
  `DROP INDEX tasks_miner;
   CREATE INDEX tasks_held ON tasks (state) WHERE state = 'held';`,
  // Each miner's unsettled samples are kept in memory (SwarmState's credit book), read at open;
  // the index by miner took a random page per credit. Moves by miner go through ledger_epoch.
  `DROP INDEX ledger_miner;`,
  // A lease id names its task (SwarmState.taskByLease), so the lease needs no unique index; the
  // table is rebuilt without it. Leases in flight had ids of the old form: their tasks go back
  // to the queue (their miners' reports get E_LEASE_LOST and they ask for new work).
  `UPDATE tasks SET state = 'ready', miner = NULL, lease = NULL, leased_at = NULL, expires = NULL
     WHERE state = 'leased';
   CREATE TABLE tasks_new (
     item INTEGER NOT NULL,
     stage INTEGER NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('fwd', 'bwd', 'tail')),
     epoch INTEGER NOT NULL,
     first_sample INTEGER NOT NULL,
     n INTEGER NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'held', 'done', 'void')),
     miner TEXT,
     prefer TEXT,
     lease TEXT,
     leased_at INTEGER,
     expires INTEGER,
     ready_at INTEGER NOT NULL,
     input TEXT NOT NULL,
     output TEXT,
     loss REAL,
     done_at INTEGER,
     gate INTEGER,
     PRIMARY KEY (item, stage, kind)
   ) WITHOUT ROWID;
   INSERT INTO tasks_new SELECT * FROM tasks;
   DROP TABLE tasks;
   ALTER TABLE tasks_new RENAME TO tasks;
   CREATE INDEX tasks_ready ON tasks (stage, epoch, kind, ready_at) WHERE state = 'ready';
   CREATE INDEX tasks_expiry ON tasks (expires) WHERE state = 'leased';
   CREATE INDEX tasks_done ON tasks (done_at) WHERE kind = 'tail' AND done_at IS NOT NULL;
   CREATE INDEX tasks_held ON tasks (state) WHERE state = 'held';`,
  // A state change's nonce is stored in its reply's row (Repository.storeReply), not in a table
  // of its own with an index on time: two B-trees fewer per commit. The nonces of the table go
  // into rows that no request id can name ('.' is outside the ids' alphabet), pruned with the rest.
  `ALTER TABLE requests ADD COLUMN nonce TEXT;
   ALTER TABLE requests ADD COLUMN nonce_ts INTEGER;
   INSERT INTO requests (key, request_id, method, path, status, reply, created_at, nonce, nonce_ts)
     SELECT key, '.nonce.' || rowid, '', '', 0, 'null', ts, nonce, ts FROM nonces ORDER BY ts;
   DROP TABLE nonces;`,
  // A merge computes its step once (the learning rate of its epoch and the step count t) and
  // keeps how it ended (published or failed) for the coordinator to apply. Merges begun before
  // this step have no lr: the merge computes it when it reads them (swarm/merge.ts).
  `ALTER TABLE merges ADD COLUMN lr REAL;
   ALTER TABLE merges ADD COLUMN t INTEGER;
   ALTER TABLE merges ADD COLUMN outcome TEXT;`,
  // A lease has a deadline heartbeats cannot move (due: from the miner's measured rate and the
  // item's cost), and the sha256 its miner declared for the output (a second upload URL for the
  // same key must declare the same bytes, so an accepted output cannot be swapped). A miner's
  // lapsed leases and false refusals count against the work it is given.
  `ALTER TABLE tasks ADD COLUMN due INTEGER;
   ALTER TABLE tasks ADD COLUMN declared TEXT;
   ALTER TABLE members ADD COLUMN lapses INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE members ADD COLUMN lapsed_epoch INTEGER;`,
  // Of the r mergers of a partition's step 2 one writes the new weights and moments to the
  // store; the others witness: they compute the same partition and report only its hashes.
  `ALTER TABLE merge_jobs ADD COLUMN writes INTEGER NOT NULL DEFAULT 1;`,
  // Retention: the epochs below this one have had their activations and gradients deleted.
  `ALTER TABLE run ADD COLUMN pruned_below INTEGER NOT NULL DEFAULT 0;`,
];
