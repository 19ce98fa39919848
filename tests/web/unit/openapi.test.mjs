// The REST API's OpenAPI document (docs/openapi.json, served at
// /api/v1/openapi.json) validated against the OpenAPI 3 schema by
// swagger-parser, its references resolved; and the routes the server
// serves (src/server/sb_api.c) each described there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const require = createRequire(root + 'web/package.json');
const SwaggerParser = require('@apidevtools/swagger-parser');

test('docs/openapi.json is a valid OpenAPI 3 document', async () => {
  const doc = JSON.parse(readFileSync(root + 'docs/openapi.json', 'utf8'));
  const api = await SwaggerParser.validate(doc);
  assert.match(api.openapi, /^3\./);
});

test('every route of sb_api.c is in the document, with its method', () => {
  const doc = JSON.parse(readFileSync(root + 'docs/openapi.json', 'utf8'));
  const src = readFileSync(root + 'src/server/sb_api.c', 'utf8');
  const rows = [...src.matchAll(/\{"(GET|POST|PUT|DELETE)", "(\/api\/v1\/[^"]*)"/g)];
  assert.ok(rows.length >= 10);
  let id = 0;
  for (const [, method, pattern] of rows) {
    const path = pattern.replace(/\*/g, '{id}');
    assert.ok(doc.paths[path], `${path} is not in docs/openapi.json`);
    assert.ok(doc.paths[path][method.toLowerCase()],
      `${method} ${path} is not in docs/openapi.json`);
    id++;
  }
  assert.equal(id, rows.length);
});
