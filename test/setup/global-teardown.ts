import { withAdminClient } from './infra';

export default async function globalTeardown(): Promise<void> {
  const infra = globalThis.__FXF_INFRA__;
  if (infra) {
    await withAdminClient(infra.adminUrl, (c) =>
      c.query(`drop database if exists ${infra.templateDb}`),
    ).catch(() => undefined);
  }
  for (const container of globalThis.__FXF_CONTAINERS__ ?? []) {
    await container.stop();
  }
}
