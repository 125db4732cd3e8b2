import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const COMMITTED = join(ROOT, 'web', 'src', 'api', 'schema.d.ts');

describe('The website API client (web/src/api/schema.d.ts)', () => {
  it('should be what openapi-typescript makes of the committed openapi.json (else run `npm run web:client`)', () => {
    const fresh = execFileSync(
      process.execPath,
      [join(ROOT, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), join(ROOT, 'openapi.json')],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 1024 * 1024 },
    );
    expect(fresh).toContain('export interface paths');
    if (readFileSync(COMMITTED, 'utf8') !== fresh) {
      throw new Error(
        'web/src/api/schema.d.ts is stale: run `npm run web:client`, rebuild the website and commit the file.',
      );
    }
  });
});
