/**
 * The same store suite against the local store (served by its fastify plugin) and against
 * s3rver on loopback (the S3 implementation, with a key prefix and two keys per listing page).
 */
import { localFixture, s3Fixture, type StoreFixture } from './fixtures.js';
import { storeSuite } from './suite.js';

const implementations: Array<[string, () => Promise<StoreFixture>]> = [
  ['local', localFixture],
  ['s3 (s3rver)', s3Fixture],
];

describe.each(implementations)('%s store', (_name, make) => {
  storeSuite(make);
});
