/** A simulated participant: a fresh key and a signed client, no model. */
import { newIdentity, type Identity } from '../../src/protocol/keys.js';
import { SignedClient } from '../../src/protocol/client.js';
import type { RegisterReply, StatusReply } from '../../src/protocol/messages.js';

export class SimParticipant {
  readonly identity: Identity;
  readonly client: SignedClient;

  constructor(url: string, run = 'test-run', identity = newIdentity(), clock?: () => number) {
    this.identity = identity;
    this.client = new SignedClient({ baseUrl: url, identity, run, clock, retries: 0 });
  }

  get id(): string {
    return this.identity.id;
  }

  register(name = 'sim'): Promise<RegisterReply> {
    return this.client.post<RegisterReply>('/v1/register', { version: 'test', name });
  }

  heartbeat(): Promise<{ server_time: number }> {
    return this.client.post('/v1/heartbeat', {});
  }

  status(): Promise<StatusReply> {
    return this.client.get<StatusReply>('/v1/status');
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
