/** Chaos, store faults in front of the orchestrator's local store (support/store-faults.ts). */
import { killAll } from '../support/cli.js';
import { storeFaultsScenario } from './support/store-faults.js';

afterAll(killAll);

describe('store faults on the local store', () => storeFaultsScenario(false));
