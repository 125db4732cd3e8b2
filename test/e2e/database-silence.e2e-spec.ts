import { bearer, makeKey, type TestKey } from '../setup/factories';
import { readInfra } from '../setup/infra';
import { capturedLogLines, logOutsideRequestsToNextApp } from '../setup/log-lines';
import { TcpProxy } from '../setup/tcp-proxy';
import { createTestApp, type TestApp } from '../setup/test-app';

/** More requests at once than the pool has connections (10): every connection goes into the dead path. */
const AT_ONCE = 14;
const STALL_MS = 2000;
/** Far longer than a stall and a new connection's, far shorter than TCP giving up (about 15 minutes). */
const ANSWER_WITHIN_MS = 20_000;

/**
 * A path to PostgreSQL that dies without a reset (real: a TcpProxy whose open connections stay open and carry
 * nothing). Before the stall watch each query on it waited until TCP gave up, its request with it, and the pool's
 * stuck connections made every request wait out knex's 60 s acquire timeout long after the path was back.
 */
describe('PostgreSQL path gone silent (e2e)', () => {
  let t: TestApp;
  let proxy: TcpProxy;
  let key: TestKey;
  const log = capturedLogLines();

  beforeAll(async () => {
    proxy = await TcpProxy.inFrontOf(readInfra().adminUrl);
    logOutsideRequestsToNextApp();
    t = await createTestApp({
      appDatabaseUrl: (url) => proxy.via(url),
      env: {
        ...log.env,
        DATABASE_STALL_TIMEOUT_MS: String(STALL_MS),
        RATE_LIMIT_MANAGEMENT_PER_MINUTE: '100000',
      },
      overrides: log.overrides,
    });
    key = await makeKey(t);
  });
  afterAll(async () => {
    await proxy.setMode('pass');
    await t.close();
    await proxy.close();
  });

  const meAll = () =>
    Promise.all(
      Array.from({ length: AT_ONCE }, () =>
        t.http
          .get('/api/v1/me')
          .set(...bearer(key.token))
          .timeout(ANSWER_WITHIN_MS)
          .then((r) => `${r.status} ${r.body.code ?? 'ok'}`),
      ),
    );

  it('should answer db_failed within seconds while the path is silent, and serve every request once it is back', async () => {
    expect(new Set(await meAll())).toEqual(new Set(['200 ok']));
    await proxy.setMode('silence');
    const during = await meAll();
    expect(new Set(during)).toEqual(new Set(['500 db_failed']));
    await proxy.setMode('pass');
    // No connection of the pool is left stuck in the dead path.
    expect(new Set(await meAll())).toEqual(new Set(['200 ok']));
    const warnings = log.lines.filter((l) => l.context === 'Database' && /heard nothing/.test(l.msg));
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings[0]).toMatchObject({ level: 40 });
  }, 120_000);
});
