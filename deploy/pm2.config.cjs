/**
 * pm2 process file for iota's roles: restarts on exit (after a short delay, with a back-off if it
 * keeps dying), a log file per role, and SIGTERM with time to finish (miners finish or release
 * their work items; the orchestrator closes its database cleanly).
 *
 *   pm2 start deploy/pm2.config.cjs --only iota-miner     # one role
 *   pm2 start deploy/pm2.config.cjs                        # all three (a one-machine swarm)
 *
 * The config files are those `iota setup` writes by default, in the folder pm2 is started from;
 * IOTA_RUN, IOTA_ORCHESTRATOR_NODE, IOTA_MINER_NODE, IOTA_VALIDATOR_NODE, IOTA_LAYER and
 * IOTA_LOG_DIR name others. A restarted miner keeps its key, so it re-joins as itself.
 */
const path = require('node:path');

const here = process.cwd();
const iota = path.join(__dirname, '..', 'bin', 'iota');
const env = (name, fallback) => process.env[name] || fallback;
const logs = env('IOTA_LOG_DIR', path.join(here, 'logs'));

// Node runs bin/iota as a plain program (interpreter 'none'): in pm2's own wrapper its IPC
// channel would keep a stopped process alive until pm2 kills it.
const role = (name, args) => ({
  name,
  script: process.execPath,
  args: [iota, ...args],
  cwd: here,
  interpreter: 'none',
  autorestart: true,
  restart_delay: 2000,
  exp_backoff_restart_delay: 200,
  kill_timeout: 30000,
  out_file: path.join(logs, `${name}.log`),
  error_file: path.join(logs, `${name}.log`),
  merge_logs: true,
  time: true,
  env: { IOTA_SUPERVISED: '' },
});

module.exports = {
  apps: [
    role('iota-orchestrator', [
      'orchestrator',
      'serve',
      '--run',
      env('IOTA_RUN', path.join(here, 'orchestrator', 'run.yaml')),
      '--node',
      env('IOTA_ORCHESTRATOR_NODE', path.join(here, 'orchestrator', 'node.yaml')),
    ]),
    role('iota-miner', [
      'miner',
      '--node',
      env('IOTA_MINER_NODE', path.join(here, 'miner.node.yaml')),
      '--layer',
      env('IOTA_LAYER', 'auto'),
      '--json',
    ]),
    role('iota-validator', [
      'validator',
      '--node',
      env('IOTA_VALIDATOR_NODE', path.join(here, 'validator.node.yaml')),
      '--json',
    ]),
  ],
};
