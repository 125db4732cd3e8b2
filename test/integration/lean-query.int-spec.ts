import { MikroORM } from '@mikro-orm/postgresql';
import { Client } from 'pg';
import { createHash } from 'node:crypto';
import { leanQuery, PREPARED_TEXTS, statementName } from '../../src/database/lean-query';
import { ormOptions } from '../../src/database/orm-options';
import { createTestDatabase } from '../setup/test-app';

/**
 * leanQuery on a real PostgreSQL, through an ORM whose pool holds one connection, so that what one call prepared is
 * what the next finds (pg_prepared_statements shows the current session's statements only).
 */
describe('leanQuery (integration)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let orm: MikroORM;
  let admin: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    orm = await MikroORM.init({
      ...ormOptions(db.url),
      pool: { min: 1, max: 1 },
      entities: [],
      discovery: { warnWhenNoEntities: false },
    });
    admin = new Client({ connectionString: db.url });
    await admin.connect();
    await admin.query('create table lean_probe (a int not null)');
    await admin.query('insert into lean_probe values (1), (2)');
  });
  afterAll(async () => {
    await admin.end();
    await orm.close(true);
    await db.drop();
  });

  const prepared = (): Promise<{ name: string; statement: string }[]> =>
    leanQuery(orm.em, 'select name, statement from pg_prepared_statements order by name', []);

  it('prepares a statement once on its connection and runs it by name after (bound parameters, same rows)', async () => {
    const text = 'select a from lean_probe where a >= $1 order by a';
    expect(await leanQuery(orm.em, text, [1])).toEqual([{ a: 1 }, { a: 2 }]);
    expect(await leanQuery(orm.em, text, [2])).toEqual([{ a: 2 }]);
    const mine = (await prepared()).filter((s) => s.statement === text);
    // Named by a hash of its text: one name is one text in every process and version sharing the database.
    const hash = createHash('sha256').update(text).digest('hex').slice(0, 40);
    expect(mine).toEqual([{ name: `fxf_${hash}`, statement: text }]);
    expect(statementName(text)).toBe(`fxf_${hash}`);
  });

  it('answers a statement whose prepared form a migration outdated ("cached plan must not change result type")', async () => {
    const text = 'select * from lean_probe order by a';
    expect(await leanQuery(orm.em, text, [])).toEqual([{ a: 1 }, { a: 2 }]);
    // A real migration under a running service: the prepared statement's result type is no longer the table's.
    await admin.query('alter table lean_probe add column b int not null default 7');
    try {
      expect(await leanQuery(orm.em, text, [])).toEqual([
        { a: 1, b: 7 },
        { a: 2, b: 7 },
      ]);
      // Still answered on that connection, call after call.
      expect(await leanQuery(orm.em, text, [])).toHaveLength(2);
    } finally {
      await admin.query('alter table lean_probe drop column b');
    }
  });

  it('passes on any other error of a prepared statement, as pg raised it', async () => {
    await expect(
      leanQuery(orm.em, 'select a from lean_probe where a = $1', ['not a number']),
    ).rejects.toMatchObject({
      code: '22P02',
    });
  });

  it(`prepares at most ${PREPARED_TEXTS} texts; the rest run unnamed and answer alike`, async () => {
    for (let i = 0; i < PREPARED_TEXTS + 5; i++) {
      expect(await leanQuery(orm.em, `select $1::int + ${i} as n`, [1])).toEqual([{ n: 1 + i }]);
    }
    const all = await prepared();
    expect(all.length).toBeLessThanOrEqual(PREPARED_TEXTS);
    expect(all.some((s) => s.statement === `select $1::int + ${PREPARED_TEXTS + 4} as n`)).toBe(false);
    expect(all.some((s) => s.statement === 'select $1::int + 0 as n')).toBe(true);
  });

  it('answers when the server connection lost what pg prepared there (a pooler), and prepares nothing after', async () => {
    // It turns preparing off for the rest of the process, as it would in production: a module of its own.
    type LeanQueryModule = typeof import('../../src/database/lean-query');
    let leanQuery!: LeanQueryModule['leanQuery'];
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      leanQuery = (require('../../src/database/lean-query') as LeanQueryModule).leanQuery;
    });
    const text = 'select a from lean_probe where a <= $1 order by a';
    expect(await leanQuery(orm.em, text, [1])).toEqual([{ a: 1 }]);
    expect((await prepared()).some((s) => s.statement === text)).toBe(true);
    // The pool's one connection loses its prepared statements behind pg's back, as a server connection handed over
    // by a pooler in transaction mode would not have them: pg still believes the statement is there.
    await orm.em.getConnection().execute('deallocate all');
    expect(await leanQuery(orm.em, text, [2])).toEqual([{ a: 1 }, { a: 2 }]);
    const other = 'select a from lean_probe where a > $1 order by a';
    expect(await leanQuery(orm.em, other, [1])).toEqual([{ a: 2 }]);
    expect(await leanQuery(orm.em, text, [1])).toEqual([{ a: 1 }]);
    expect(await prepared()).toEqual([]);
  });
});
