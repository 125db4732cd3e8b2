import { randomBytes } from 'node:crypto';
import { SecretBox } from '../../src/modules/webhooks/secret-box';
import { SigningSecretsService } from '../../src/modules/webhooks/signing-secrets.service';
import { sql } from '../setup/db';
import { makeUser } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

describe(SigningSecretsService.name, () => {
  const keyA = randomBytes(32).toString('hex');
  const keyB = randomBytes(32).toString('hex');
  let a: TestApp;

  beforeAll(async () => {
    a = await createTestApp({ env: { SECRET_KEY: keyA } });
  });
  afterAll(() => a.close());

  async function sealed(userId: string): Promise<string> {
    const [row] = await sql<{ sealed: string }>(a, 'select sealed from webhook_secrets where user_id = $1', [
      userId,
    ]);
    return row.sealed;
  }

  it('should seal again under the current SECRET_KEY a secret it opened with SECRET_KEY_PREVIOUS', async () => {
    const user = await makeUser(a);
    const secret = await a.app.get(SigningSecretsService).reveal(user.id);
    const underA = await sealed(user.id);
    expect(new SecretBox(keyA).open(underA, user.id)).toBe(secret);
    expect(new SecretBox(keyB).open(underA, user.id)).toBeNull();

    // The operator rotates: SECRET_KEY=B, SECRET_KEY_PREVIOUS=A, and the instance restarts (api role: no start-up
    // pass, so the read alone re-seals).
    const b = await createTestApp({
      shareWith: a,
      env: { SECRET_KEY: keyB, SECRET_KEY_PREVIOUS: keyA, APP_ROLE: 'api' },
    });
    try {
      expect(await b.app.get(SigningSecretsService).reveal(user.id)).toBe(secret);
    } finally {
      await b.close();
    }
    const now = await sealed(user.id);
    expect(now).not.toBe(underA);
    // B alone opens it now: SECRET_KEY_PREVIOUS can be dropped without losing the secret.
    expect(new SecretBox(keyB).open(now, user.id)).toBe(secret);
    expect(new SecretBox(keyA).open(now, user.id)).toBeNull();
  });

  it('should re-seal, at start, the secrets nobody reads', async () => {
    const users = [await makeUser(a), await makeUser(a)];
    const secrets = await Promise.all(users.map((u) => a.app.get(SigningSecretsService).reveal(u.id)));
    const before = await Promise.all(users.map((u) => sealed(u.id)));
    const b = await createTestApp({ shareWith: a, env: { SECRET_KEY: keyB, SECRET_KEY_PREVIOUS: keyA } });
    try {
      // No read: the start-up pass of the worker role does it.
      await waitFor('the start-up re-seal', async () => {
        const now = await Promise.all(users.map((u) => sealed(u.id)));
        return now.every((s, i) => s !== before[i]);
      });
      expect(await b.app.get(SigningSecretsService).resealAll()).toBe(0);
    } finally {
      await b.close();
    }
    for (const [i, u] of users.entries()) {
      expect(new SecretBox(keyB).open(await sealed(u.id), u.id)).toBe(secrets[i]);
    }
  });

  it('should leave a secret sealed under the current key as it is', async () => {
    const user = await makeUser(a);
    const secrets = a.app.get(SigningSecretsService);
    await secrets.reveal(user.id);
    const first = await sealed(user.id);
    await secrets.reveal(user.id);
    expect(await sealed(user.id)).toBe(first);
  });
});
