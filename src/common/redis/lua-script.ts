import { createHash } from 'node:crypto';
import type Redis from 'ioredis';

/**
 * A Lua script run by its SHA-1 (EVALSHA): Redis keeps it compiled after the first call, and each call sends 40
 * characters instead of the source (which Redis would also hash again). A Redis that does not hold it yet (a restart,
 * SCRIPT FLUSH, another node) answers NOSCRIPT, and that one call sends the source (EVAL), which loads it.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: Redis, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return client.eval(this.source, keys.length, ...keys, ...args);
      }
      throw err;
    }
  }
}
