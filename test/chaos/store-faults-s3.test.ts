/**
 * Chaos, store faults in front of S3 (s3rver; support/store-faults.ts). Left out of `npm test`
 * (one failure in six runs, not explained; `npm run test:chaos` runs it): see docs/testing.md.
 */
import { killAll } from '../support/cli.js';
import { storeFaultsScenario } from './support/store-faults.js';

afterAll(killAll);

describe('store faults on S3', () => storeFaultsScenario(true));
