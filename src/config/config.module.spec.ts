import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig, loadConfig } from './app-config';
import { ConfigModule } from './config.module';

describe('ConfigModule', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fxf-config-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('should hand the app a deeply frozen AppConfig, complete (the generated secret included)', () => {
    const config = loadConfig({ DATA_DIR: dir });
    expect(config.secretKey).toMatch(/.{32,}/);
    const provided = ConfigModule.forRoot(config).providers?.[0] as { provide: unknown; useValue: AppConfig };
    expect(provided.provide).toBe(AppConfig);
    const frozen = provided.useValue;
    expect(Object.isFrozen(frozen)).toBe(true);
    expect(Object.isFrozen(frozen.rateLimit)).toBe(true);
    expect(() => {
      (frozen as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (frozen.moderation as { enabled: boolean }).enabled = false;
    }).toThrow(TypeError);
    expect(frozen.port).toBe(3000);
  });
});
