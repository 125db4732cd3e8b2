import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPENAPI_FILE_SERVER, openApiDocumentFromCode, openApiJson } from '../../src/openapi-document';
import { createTestApp, type TestApp } from '../setup/test-app';

const COMMITTED = join(__dirname, '..', '..', 'openapi.json');

describe('The committed openapi.json (e2e)', () => {
  let fromCode: string;

  beforeAll(async () => {
    fromCode = openApiJson(await openApiDocumentFromCode());
  });

  it('should equal the document the code generates (else run `npm run openapi:write` and commit openapi.json)', () => {
    const committed = readFileSync(COMMITTED, 'utf8');
    if (committed !== fromCode) {
      throw new Error(
        'openapi.json differs from the code: run `npm run openapi:write` and commit openapi.json ' +
          '(review the diff: it is the public contract).',
      );
    }
    expect(JSON.parse(committed).servers).toEqual([{ url: OPENAPI_FILE_SERVER }]);
  });

  it('should be generated the same way twice (stable key order)', async () => {
    expect(openApiJson(await openApiDocumentFromCode())).toBe(fromCode);
  });

  describe('against a running app', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp();
    });
    afterAll(() => t.close());

    it('should be what a running app serves at /docs/openapi.json, but for the server URL', async () => {
      const served = (await t.http.get('/docs/openapi.json').expect(200)).body;
      expect(served.servers).toEqual([{ url: t.config.publicUrl }]);
      expect({ ...served, servers: [{ url: OPENAPI_FILE_SERVER }] }).toEqual(JSON.parse(fromCode));
    });
  });
});
