import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger, { type SwaggerTransformObject } from '@fastify/swagger';
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { InvalidStateError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { assertApiExposureSafe, assertTokenStrength, BearerAuth, normaliseToken, tokenKey } from './auth.js';
import type { CallControl } from './call-control.js';
import { DestinationPolicy, parseDestination } from './destinations.js';
import { DEFAULT_BUSY_RETRY_AFTER_S, RateLimitedError, recogniseCallControlError } from './errors.js';
import {
  CallIdParams,
  CallList,
  CallViewSchema,
  CreatedCall,
  ErrorBody,
  Health,
  PlaceCallBody,
  ReadinessSchema,
  TransferAccepted,
  TransferBody,
} from './schemas.js';

export interface ApiServerOptions {
  control: CallControl;
  /** API_TOKEN; undefined or '' = no auth, allowed only on a loopback bind (see startApiServer). */
  token: string | undefined;
  /** OUTBOUND_ALLOWED_DESTINATIONS entries (see ./destinations.ts); empty denies every call. */
  allowedDestinations: readonly string[];
  /** Calls placed (POST /v1/calls) per minute per token. */
  rateLimitPerMinute: number;
  logger: Logger;
}

/** Largest request body: a long instructions text plus variables fits well within it. */
const BODY_LIMIT_BYTES = 256 * 1024;
/** The window API_RATE_LIMIT_PER_MINUTE counts over. */
const RATE_LIMIT_WINDOW_MS = 60_000;
/** Most distinct tokens/clients the rate limiter tracks (LRU beyond that). */
const RATE_LIMIT_CACHE_SIZE = 10_000;
/** Probes hit these every few seconds: log them at debug so they do not drown the call logs. */
const PROBE_ROUTES = new Set(['/healthz', '/readyz']);

const BEARER_SECURITY = [{ bearerAuth: [] }];
const E400 = ErrorBody.describe('Validation failed: `details` names every field and reason');
const E401 = ErrorBody.describe('Missing or wrong bearer token');
const E404 = ErrorBody.describe('No such call');

function buildServer(logger: Logger) {
  return Fastify({
    loggerInstance: logger,
    // Fastify's own request lines are replaced by the header-free summary in onResponse.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();
}

export type ApiServer = ReturnType<typeof buildServer>;

type OpenApiDocument = ReturnType<SwaggerTransformObject>;

/** Whether each server was built with a token, for startApiServer's exposure check. */
const tokenConfigured = new WeakMap<object, boolean>();

/**
 * Builds the HTTP API (not listening). Throws if an allow-list entry is malformed, the token is weak or
 * the rate limit is not a positive integer. The token and the Authorization header are never logged:
 * Fastify's request logging is replaced by a header-free summary.
 */
export function createApiServer(options: ApiServerOptions): ApiServer {
  const token = normaliseToken(options.token);
  if (token !== undefined) assertTokenStrength(token);
  if (!Number.isInteger(options.rateLimitPerMinute) || options.rateLimitPerMinute < 1) {
    throw new RangeError('API_RATE_LIMIT_PER_MINUTE must be a positive integer');
  }
  const auth = token === undefined ? undefined : new BearerAuth(token);
  const policy = new DestinationPolicy(options.allowedDestinations);
  const { control } = options;
  const log = options.logger.child(
    { component: 'api' },
    { redact: { paths: ['req.headers.authorization', 'headers.authorization'], remove: true } },
  );
  const server = buildServer(log);
  tokenConfigured.set(server, auth !== undefined);

  server.setValidatorCompiler(validatorCompiler);
  server.setSerializerCompiler(serializerCompiler);
  server.setErrorHandler(handleError);
  server.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ error: 'not_found', message: 'no such route' });
  });
  server.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const fields = {
      reqId: request.id,
      method: request.method,
      route,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    };
    if (PROBE_ROUTES.has(route)) log.debug(fields, 'http request');
    else log.info(fields, 'http request');
    done();
  });

  void server.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'voxgate',
        version: '1',
        description: 'Place, inspect, transfer and hang up AI phone calls.',
      },
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'API_TOKEN' } },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: (document) => pruneUnusedSchemas(jsonSchemaTransformObject(document)),
  });
  void server.register(fastifyRateLimit, {
    global: false,
    // After auth (onRequest) and validation: only well-formed, authenticated attempts count.
    hook: 'preHandler',
    cache: RATE_LIMIT_CACHE_SIZE,
    keyGenerator: (request) => tokenKey(request.headers.authorization) ?? `ip:${request.ip}`,
    errorResponseBuilder: (_request, context) =>
      new RateLimitedError(`rate limit exceeded: retry in ${context.after}`, context.statusCode),
  });

  // Routes are registered as plugins so that @fastify/swagger (registered first) sees every one.
  void server.register((plugin, _opts, done) => {
    const probes = plugin.withTypeProvider<ZodTypeProvider>();
    probes.get(
      '/healthz',
      {
        schema: { summary: 'The process is up', tags: ['probes'], response: { 200: Health.describe('Up') } },
      },
      () => ({ status: 'ok' as const }),
    );

    probes.get(
      '/readyz',
      {
        schema: {
          summary: 'Ready for calls: connected to drachtio-server and below the call limit',
          tags: ['probes'],
          response: { 200: ReadinessSchema.describe('Ready'), 503: ReadinessSchema.describe('Not ready') },
        },
      },
      async (_request, reply) => {
        let readiness;
        try {
          readiness = control.readiness();
        } catch (error) {
          log.error({ err: error }, 'readiness check threw');
          readiness = { ready: false, checks: { control: { ok: false, detail: 'readiness check failed' } } };
        }
        return reply.code(readiness.ready ? 200 : 503).send(readiness);
      },
    );
    probes.get('/openapi.json', { schema: { hide: true } }, () => server.swagger());
    done();
  });

  void server.register(
    (plugin, _opts, done) => {
      const v1 = plugin.withTypeProvider<ZodTypeProvider>();
      v1.addHook('onRequest', (request, reply, next) => {
        if (auth === undefined) return next();
        const result = auth.check(request.headers.authorization);
        if (result === 'ok') return next();
        void reply
          .code(401)
          .header(
            'www-authenticate',
            result === 'missing' ? 'Bearer realm="voxgate"' : 'Bearer realm="voxgate", error="invalid_token"',
          )
          .send({ error: 'unauthorized', message: 'a valid bearer token is required' });
      });

      v1.post(
        '/calls',
        {
          config: { rateLimit: { max: options.rateLimitPerMinute, timeWindow: RATE_LIMIT_WINDOW_MS } },
          schema: {
            summary: 'Place an outbound call',
            tags: ['calls'],
            security: BEARER_SECURITY,
            body: PlaceCallBody,
            response: {
              201: CreatedCall.describe('Call placed; Location names it'),
              400: E400,
              401: E401,
              403: ErrorBody.describe('Destination not allowed'),
              429: ErrorBody.describe('Rate limit exceeded (see Retry-After)'),
              501: ErrorBody.describe('Outbound calling is not configured'),
              503: ErrorBody.describe('At capacity (see Retry-After)'),
            },
          },
        },
        async (request, reply) => {
          const parsed = parseDestination(request.body.to);
          const decision = parsed.ok
            ? policy.check(parsed.destination)
            : { allowed: false, reason: parsed.reason };
          if (!decision.allowed) {
            log.warn({ reqId: request.id, pii: { to: request.body.to } }, 'outbound destination refused');
            return reply.code(403).send({ error: 'destination_not_allowed', message: decision.reason });
          }
          const call = await control.placeCall(request.body);
          return reply
            .code(201)
            .header('location', `/v1/calls/${encodeURIComponent(call.id)}`)
            .send({ id: call.id, state: call.state });
        },
      );

      v1.get(
        '/calls',
        {
          schema: {
            summary: 'List live calls',
            tags: ['calls'],
            security: BEARER_SECURITY,
            response: { 200: CallList.describe('Live calls'), 401: E401 },
          },
        },
        () => ({ calls: control.listCalls() }),
      );

      v1.get(
        '/calls/:id',
        {
          schema: {
            summary: 'One call: state, timestamps, SIP outcome, transcript so far, media stats',
            tags: ['calls'],
            security: BEARER_SECURITY,
            params: CallIdParams,
            response: { 200: CallViewSchema.describe('The call'), 400: E400, 401: E401, 404: E404 },
          },
        },
        async (request, reply) => {
          const call = control.getCall(request.params.id);
          if (call === undefined)
            return reply.code(404).send({ error: 'not_found', message: 'no such call' });
          return call;
        },
      );

      v1.post(
        '/calls/:id/transfer',
        {
          schema: {
            summary: 'Blind-transfer a call to a named target; the outcome arrives as a webhook',
            tags: ['calls'],
            security: BEARER_SECURITY,
            params: CallIdParams,
            body: TransferBody,
            response: {
              202: TransferAccepted.describe('Transfer started'),
              400: E400,
              401: E401,
              404: E404,
              403: ErrorBody.describe('Target not in the transfer allow-list'),
              409: ErrorBody.describe('The call cannot be transferred in its state'),
              501: ErrorBody.describe('Transfers are not configured'),
            },
          },
        },
        async (request, reply) => {
          await control.transfer(request.params.id, request.body.target);
          return reply.code(202).send({ id: request.params.id, target: request.body.target });
        },
      );

      v1.delete(
        '/calls/:id',
        {
          schema: {
            summary: 'Hang up a call',
            tags: ['calls'],
            security: BEARER_SECURITY,
            params: CallIdParams,
            response: {
              204: z.undefined().describe('Hung up'),
              400: E400,
              401: E401,
              404: E404,
              409: ErrorBody.describe('The call cannot be hung up in its state'),
            },
          },
        },
        async (request, reply) => {
          await control.hangUp(request.params.id);
          return reply.code(204).send();
        },
      );
      done();
    },
    { prefix: '/v1' },
  );

  return server;

  function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const context = error.validationContext ?? 'body';
      const details = error.validation.flatMap((issue) => {
        const path = issue.instancePath.split('/').filter((s) => s !== '');
        const keys = issue.params.keys;
        if (issue.keyword === 'unrecognized_keys' && Array.isArray(keys)) {
          return keys.map((key) => ({
            field: fieldName([...path, String(key)], context),
            reason: 'is not a known property',
          }));
        }
        // Record keys and the like wrap the real problem in nested issues: report those.
        const nested = issue.params.issues;
        const reasons = Array.isArray(nested)
          ? nested.flatMap((n: unknown) =>
              typeof n === 'object' && n !== null && 'message' in n && typeof n.message === 'string'
                ? [n.message]
                : [],
            )
          : [];
        const reason = reasons.length > 0 ? reasons.join('; ') : (issue.message ?? 'is invalid');
        return [{ field: fieldName(path, context), reason }];
      });
      return reply.code(400).send({ error: 'validation', details });
    }
    if (error instanceof RateLimitedError) {
      return reply.code(error.statusCode).send({ error: 'rate_limited', message: error.message });
    }
    const known = recogniseCallControlError(error);
    if (known !== undefined) {
      switch (known.code) {
        case 'not_found':
          return reply.code(404).send({ error: 'not_found', message: known.message });
        case 'invalid_state':
          return reply.code(409).send({ error: 'invalid_state', message: known.message });
        case 'destination_not_allowed':
          return reply.code(403).send({ error: 'destination_not_allowed', message: known.message });
        case 'busy':
          return reply
            .code(503)
            .header('retry-after', String(known.retryAfterS ?? DEFAULT_BUSY_RETRY_AFTER_S))
            .send({ error: 'busy', message: known.message });
        case 'not_configured':
          return reply.code(501).send({ error: 'not_configured', message: known.message });
        case 'invalid_argument':
          return reply.code(400).send({
            error: 'validation',
            details: [{ field: known.field ?? 'body', reason: known.message }],
          });
      }
    }
    if (error instanceof InvalidStateError) {
      return reply.code(409).send({ error: 'invalid_state', message: error.message });
    }
    const status = httpStatusOf(error);
    if (status !== undefined && status >= 400 && status < 500) {
      // Fastify's own client errors: bad JSON, wrong content type, body too large, …
      const message = error instanceof Error ? error.message : 'bad request';
      if (status === 400) {
        return reply.code(400).send({ error: 'validation', details: [{ field: 'body', reason: message }] });
      }
      const code =
        status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'bad_request';
      return reply.code(status).send({ error: code, message });
    }
    log.error({ err: error, reqId: request.id, route: request.routeOptions.url }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  }
}

function fieldName(path: string[], context: string): string {
  if (path.length === 0) return context;
  return path
    .map((segment, i) => (/^\d+$/.test(segment) ? `[${segment}]` : i === 0 ? segment : `.${segment}`))
    .join('');
}

/**
 * The zod provider registers an input and an output variant of every named schema; keep only the
 * component schemas the document actually references, so the published spec has no dead entries.
 */
function pruneUnusedSchemas(document: OpenApiDocument): OpenApiDocument {
  if (!('components' in document) || document.components?.schemas === undefined) return document;
  const { schemas } = document.components;
  const refsIn = (value: unknown): string[] =>
    [...JSON.stringify(value).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].flatMap((m) =>
      m[1] ? [m[1]] : [],
    );
  const used = new Set<string>();
  const pending = refsIn({ ...document, components: { ...document.components, schemas: {} } });
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (used.has(name)) continue;
    used.add(name);
    pending.push(...refsIn(schemas[name]));
  }
  for (const name of Object.keys(schemas)) {
    if (!used.has(name)) Reflect.deleteProperty(schemas, name);
  }
  return document;
}

function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('statusCode' in error)) return undefined;
  return typeof error.statusCode === 'number' ? error.statusCode : undefined;
}

/**
 * Listens on `host:port` after the exposure check (no token ⇒ loopback only). Resolves to the bound
 * address, e.g. `http://127.0.0.1:8080`.
 */
export async function startApiServer(
  server: ApiServer,
  options: { host: string; port: number },
): Promise<string> {
  const hasToken = tokenConfigured.get(server);
  if (hasToken === undefined) throw new TypeError('startApiServer needs a server from createApiServer');
  if (!hasToken) assertApiExposureSafe({ host: options.host, token: undefined });
  return server.listen({ host: options.host, port: options.port });
}
