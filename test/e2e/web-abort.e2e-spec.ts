import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { WEB_INDEX_FILE } from '../../src/modules/web/web-files';
import { capturedLogLines } from '../setup/log-lines';
import { createTestApp, type TestApp } from '../setup/test-app';
import { ensureWebBuilt } from '../setup/web-build';

/**
 * A browser that leaves a page abandons its asset requests. That is the client's business: before, `sendFile`'s
 * ECONNABORTED reached the exception filter, which took the socket error for a database failure and logged
 * "Unexpected error (db_failed)" with a stack, burying real database failures among false ones.
 */
describe('The website: an abandoned asset request (e2e)', () => {
  const { lines, env, overrides } = capturedLogLines();
  let t: TestApp;
  let scriptPath: string;

  beforeAll(async () => {
    ensureWebBuilt();
    scriptPath = /<script type="module" crossorigin src="(\/assets\/[^"]+\.js)"/.exec(
      readFileSync(WEB_INDEX_FILE, 'utf8'),
    )![1];
    t = await createTestApp({ env, overrides });
  });
  afterAll(() => t.close());

  it('should log no error when the client goes away before an asset is sent', async () => {
    const port = (t.app.getHttpServer().address() as AddressInfo).port;
    for (let i = 0; i < 20; i++) {
      // The request, then the connection closed at once: the server finds the client gone as it starts sending.
      await new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.end(`GET ${scriptPath} HTTP/1.1\r\nHost: x\r\n\r\n`);
          socket.destroy();
          resolve();
        });
      });
    }
    // A request after them is answered, and its line is written: everything before it has been handled.
    await t.http.get(scriptPath).expect(200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(lines.filter((l) => l.level >= 50).map((l) => String(l.msg))).toEqual([]);
    expect(lines.some((l) => l.req?.url === scriptPath && l.res?.statusCode === 200)).toBe(true);
  });
});
