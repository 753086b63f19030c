import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIV3_1 } from 'openapi-types';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../../src/api/server.js';
import { FakeCallControl, makeServer } from './fake-call-control.js';

let server: ApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function fetchDocument(): Promise<OpenAPIV3_1.Document> {
  server = makeServer(new FakeCallControl());
  const res = await server.inject({ method: 'GET', url: '/openapi.json' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return res.json();
}

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const doc = await fetchDocument();
    expect(doc.openapi).toMatch(/^3\.1\./);
    // validate() mutates and dereferences its argument: give it a copy.
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeDefined();
  });

  it('documents every route with its methods', async () => {
    const doc = await fetchDocument();
    const operations = Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
      Object.keys(item ?? {})
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
    expect(doc.components?.securitySchemes?.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths?.['/v1/calls']?.post?.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths?.['/v1/calls/{id}']?.delete?.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths?.['/healthz']?.get?.security).toBeUndefined();
    expect(doc.paths?.['/readyz']?.get?.security).toBeUndefined();
  });

  it('publishes the request and call schemas, with only referenced components', async () => {
    const doc = await fetchDocument();
    const schemas = doc.components?.schemas ?? {};
    const serialized = JSON.stringify(doc);
    for (const name of Object.keys(schemas)) expect(serialized).toContain(`"#/components/schemas/${name}"`);
    const resolved = await SwaggerParser.dereference(structuredClone(doc));
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
