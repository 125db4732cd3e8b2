import { MikroORM } from '@mikro-orm/postgresql';
import { Logger } from '@nestjs/common';
import { Client } from 'pg';
import { leanQuery } from '../../src/database/lean-query';
import { ormOptions } from '../../src/database/orm-options';
import { PrivatePgBouncer } from '../setup/private-servers';
import { createTestDatabase } from '../setup/test-app';

/**
 * leanQuery behind a real PgBouncer in transaction mode (Debian's 1.18, which does not carry prepared statements
 * across server connections): the statement a client connection prepared on one server connection is not there when
 * its next transaction runs on another. Every answer must still be right, and the process stops preparing.
 */
describe('leanQuery behind PgBouncer in transaction mode (integration)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let bouncer: PrivatePgBouncer;
  let orm: MikroORM;

  beforeAll(async () => {
    db = await createTestDatabase();
    const direct = new URL(db.url);
    bouncer = await PrivatePgBouncer.start({
      host: direct.hostname,
      port: Number(direct.port || 5432),
      user: decodeURIComponent(direct.username),
    });
    // One client connection: what it prepared, pg believes prepared for all its later calls.
    orm = await MikroORM.init({
      ...ormOptions(bouncer.urlOf(db.url)),
      pool: { min: 1, max: 1 },
      entities: [],
      discovery: { warnWhenNoEntities: false },
    });
    const admin = new Client({ connectionString: db.url });
    await admin.connect();
    await admin.query('create table lean_probe (a int not null)');
    await admin.query('insert into lean_probe select generate_series(1, 5)');
    await admin.end();
  });
  afterAll(async () => {
    await orm?.close(true);
    await bouncer?.stop();
    await db?.drop();
  });

  it('answers every call right when its statement is not on the server connection it lands on', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn');
    const text = 'select a from lean_probe where a <= $1 order by a';
    expect(await leanQuery(orm.em, text, [1])).toEqual([{ a: 1 }]);
    // Another client holds the server connection that statement was prepared on, in an open transaction, so the
    // bouncer gives our next transaction a server connection of its own, which never saw the statement.
    const holder = new Client({ connectionString: bouncer.urlOf(db.url) });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('select 1');
      expect(await leanQuery(orm.em, text, [2])).toEqual([{ a: 1 }, { a: 2 }]);
      await holder.query('commit');
    } finally {
      await holder.end();
    }
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toEqual({ code: '26000' });

    // From here nothing is prepared: many texts, from several connections at once, all right.
    const many = await MikroORM.init({
      ...ormOptions(bouncer.urlOf(db.url)),
      pool: { min: 0, max: 4 },
      entities: [],
      discovery: { warnWhenNoEntities: false },
    });
    try {
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          leanQuery<{ n: number }>(
            many.em,
            `select count(*)::int as n from lean_probe where a > $1 and ${i} >= 0`,
            [i % 5],
          ),
        ),
      );
      expect(answers.map((rows) => rows[0].n)).toEqual(Array.from({ length: 40 }, (_, i) => 5 - (i % 5)));
    } finally {
      await many.close(true);
    }
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();
  });
});
