/**
 * The wire messages, as TypeBox schemas: the server validates bodies and replies with them
 * before handlers run, /openapi.json publishes them, and clients get their static types.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const ErrorReply = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      hint: Type.Optional(Type.String()),
      server_time: Type.Optional(Type.Integer()),
      phase: Type.Optional(Type.String()),
      reason: Type.Optional(Type.String()),
      next_change_at: Type.Optional(Type.Integer()),
      retry_after_ms: Type.Optional(
        Type.Integer({ description: 'E_RATE_LIMITED: how long to wait before trying again' }),
      ),
    }),
  },
  { $id: 'ErrorReply' },
);
export type ErrorReply = Static<typeof ErrorReply>;

export const Role = Type.Union([
  Type.Literal('miner'),
  Type.Literal('validator'),
  Type.Literal('admin'),
]);

export const RegisterRequest = Type.Object(
  {
    version: Type.String({ maxLength: 32, description: 'iota version of the client' }),
    name: Type.Optional(Type.String({ maxLength: 64, pattern: '^[\\w .-]*$' })),
    backend: Type.Optional(Type.String({ maxLength: 32 })),
    threads: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
  },
  { additionalProperties: false },
);
export type RegisterRequest = Static<typeof RegisterRequest>;

export const RegisterReply = Type.Object({
  id: Type.String(),
  role: Role,
  run: Type.String(),
  new: Type.Boolean(),
  server_time: Type.Integer(),
});
export type RegisterReply = Static<typeof RegisterReply>;

export const HeartbeatRequest = Type.Object(
  { state: Type.Optional(Type.String({ maxLength: 32 })) },
  { additionalProperties: false },
);
export const HeartbeatReply = Type.Object({
  server_time: Type.Integer(),
  leases_renewed: Type.Optional(
    Type.Integer({ description: 'leases of yours this heartbeat renewed' }),
  ),
  lease_expires_at: Type.Optional(
    Type.Integer({ description: 'when they expire now, unless renewed again' }),
  ),
});
export type HeartbeatReply = Static<typeof HeartbeatReply>;

export const StatusReply = Type.Object({
  run: Type.String(),
  version: Type.String(),
  protocol: Type.Integer(),
  server_time: Type.Integer(),
  participants: Type.Object({
    miner: Type.Integer(),
    validator: Type.Integer(),
    admin: Type.Integer(),
  }),
});
export type StatusReply = Static<typeof StatusReply>;

export const ParticipantsReply = Type.Object({
  participants: Type.Array(
    Type.Object({
      id: Type.String(),
      role: Role,
      registered_at: Type.Integer(),
      last_seen: Type.Integer(),
      name: Type.Optional(Type.String()),
    }),
  ),
});
export type ParticipantsReply = Static<typeof ParticipantsReply>;

/** Replies of every route also allow the error shape. */
export function replies(ok: TSchema): Record<number, TSchema> {
  return { 200: ok, '4xx': ErrorReply, '5xx': ErrorReply } as unknown as Record<number, TSchema>;
}
