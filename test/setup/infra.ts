import { Client } from 'pg';

/** Where the tests' PostgreSQL and Redis are: set by global-setup for every jest worker. */
export interface TestInfra {
  /** A URL of the server's maintenance database (to create and drop test databases). */
  adminUrl: string;
  templateDb: string;
  redisUrl: string;
}

export const INFRA_ENV = 'FXF_TEST_INFRA';

export function readInfra(): TestInfra {
  const raw = process.env[INFRA_ENV];
  if (!raw) {
    throw new Error('test infrastructure not set up: run the tests through jest (globalSetup)');
  }
  return JSON.parse(raw) as TestInfra;
}

export function databaseUrl(adminUrl: string, db: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${db}`;
  return url.toString();
}

export async function withAdminClient<T>(adminUrl: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
