import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ApiServer } from '../../../src/api/server.js';
import { FakeCallControl, makeServer } from './fake-call-control.js';

/** The top of an OpenAPI document, as far as these tests read it (nested parts use toMatchObject). */
const OpenApiDocument = z.looseObject({
  openapi: z.string(),
  paths: z.record(z.string(), z.record(z.string(), z.unknown())),
  components: z.looseObject({
    schemas: z.record(z.string(), z.unknown()),
    securitySchemes: z.record(z.string(), z.unknown()),
  }),
});

let server: ApiServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function fetchDocument(): Promise<z.infer<typeof OpenApiDocument>> {
  server = makeServer(new FakeCallControl());
  const res = await server.inject({ method: 'GET', url: '/openapi.json' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return OpenApiDocument.parse(res.json());
}

/** The served bytes, saved to a file for the validator (which takes a path or its own document type). */
async function servedFile(): Promise<string> {
  server = makeServer(new FakeCallControl());
  const res = await server.inject({ method: 'GET', url: '/openapi.json' });
  dir ??= await mkdtemp(join(tmpdir(), 'voxgate-openapi-'));
  const file = join(dir, 'openapi.json');
  await writeFile(file, res.body);
  return file;
}

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const doc = await fetchDocument();
    expect(doc.openapi).toMatch(/^3\.1\./);
    await server?.close();
    await expect(SwaggerParser.validate(await servedFile())).resolves.toMatchObject({ openapi: doc.openapi });
  });

  it('documents every route with its methods', async () => {
    const doc = await fetchDocument();
    const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((k) => ['get', 'post', 'put', 'patch', 'delete'].includes(k))
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(operations.sort()).toEqual(
      [
        'DELETE /v1/calls/{id}',
        'GET /healthz',
        'GET /readyz',
        'GET /v1/calls',
        'GET /v1/calls/{id}',
        'POST /v1/calls',
        'POST /v1/calls/{id}/transfer',
      ].sort(),
    );
  });

  it('marks call-control routes as bearer-protected and the probes as open', async () => {
    const doc = await fetchDocument();
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    const bearer = { security: [{ bearerAuth: [] }] };
    expect(doc.paths['/v1/calls']).toMatchObject({ post: bearer, get: bearer });
    expect(doc.paths['/v1/calls/{id}']).toMatchObject({ get: bearer, delete: bearer });
    expect(doc.paths['/v1/calls/{id}/transfer']).toMatchObject({ post: bearer });
    expect(doc.paths['/healthz']?.get).not.toHaveProperty('security');
    expect(doc.paths['/readyz']?.get).not.toHaveProperty('security');
  });

  it('publishes the request and call schemas, with only referenced components', async () => {
    const doc = await fetchDocument();
    const serialized = JSON.stringify(doc);
    for (const name of Object.keys(doc.components.schemas)) {
      expect(serialized).toContain(`"#/components/schemas/${name}"`);
    }
    const resolved = await SwaggerParser.dereference(await servedFile());
    expect(resolved.paths?.['/v1/calls']).toMatchObject({
      post: {
        requestBody: {
          content: { 'application/json': { schema: { required: ['to'], additionalProperties: false } } },
        },
      },
    });
    expect(resolved.paths?.['/v1/calls/{id}']).toMatchObject({
      get: {
        responses: {
          '200': {
            content: {
              'application/json': {
                schema: {
                  properties: { state: { enum: expect.arrayContaining(['ringing', 'active', 'ended']) } },
                },
              },
            },
          },
        },
      },
    });
  });
});
