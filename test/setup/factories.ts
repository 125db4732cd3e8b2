import { randomBytes } from 'node:crypto';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { UsersService } from '../../src/modules/auth/users.service';
import type { TestApp } from './test-app';

export interface TestUser {
  id: string;
  email: string;
  password: string;
}

export interface TestSession {
  cookie: string;
  csrf: string;
}

export interface TestKey {
  token: string;
  keyId: string;
  user: TestUser;
}

/** A user inserted through the real UsersService; emails are unique per call. */
export async function makeUser(t: TestApp, role: 'user' | 'admin' = 'user'): Promise<TestUser> {
  const email = `u-${randomBytes(6).toString('hex')}@example.com`;
  const password = 'correct horse battery';
  const user = await t.app.get(UsersService).create(email, password, role, undefined, 'test');
  return { id: user.id, email, password };
}

/** Signs in over HTTP and returns the cookie and CSRF token a browser would hold. */
export async function login(t: TestApp, user: TestUser): Promise<TestSession> {
  const res = await t.http
    .post('/api/v1/auth/login')
    .send({ email: user.email, password: user.password })
    .expect(200);
  const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
  const cookie = setCookie.map((c) => c.split(';')[0]).join('; ');
  const session = await t.http.get('/api/v1/auth/session').set('Cookie', cookie).expect(200);
  return { cookie, csrf: (session.body as { csrf_token: string }).csrf_token };
}

/** An API key made through the real ApiKeysService (for a new user unless one is given). */
export async function makeKey(t: TestApp, user?: TestUser, label = 'test'): Promise<TestKey> {
  const owner = user ?? (await makeUser(t));
  const created = await t.app.get(ApiKeysService).create(owner.id, label);
  return { token: created.token, keyId: created.key.id, user: owner };
}

export const bearer = (token: string): [string, string] => ['Authorization', `Bearer ${token}`];
