/** /openapi.json, built from the schemas the routes declare (the same ones that validate). */
import type { RouteOptions } from 'fastify';

interface RouteDoc {
  method: string | string[];
  url: string;
  schema?: RouteOptions['schema'];
  description?: string;
}

export function openApiDocument(routes: RouteDoc[], version: string): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of routes.flatMap((x) =>
    Array.isArray(x.method)
      ? x.method.map((method) => ({ ...x, method }))
      : [{ ...x, method: x.method }],
  )) {
    if (r.method === 'HEAD') continue;
    const s = (r.schema ?? {}) as {
      body?: object;
      querystring?: object;
      response?: Record<string, object>;
      description?: string;
    };
    const op: Record<string, unknown> = { description: s.description ?? r.description ?? '' };
    if (s.body)
      op.requestBody = { required: true, content: { 'application/json': { schema: s.body } } };
    if (s.querystring) op.parameters = [{ in: 'query', name: 'query', schema: s.querystring }];
    op.responses = Object.fromEntries(
      Object.entries(s.response ?? { 200: {} }).map(([code, schema]) => [
        code.toUpperCase(),
        { description: code, content: { 'application/json': { schema } } },
      ]),
    );
    (paths[r.url] ??= {})[r.method.toLowerCase()] = op;
  }
  return { openapi: '3.0.3', info: { title: 'iota orchestrator', version }, paths };
}
