import { getMetadataStorage } from 'class-validator';
import { ENV_KEYS, EnvSchema } from './env.schema';

/** Every property EnvSchema validates (class-validator's metadata: each has at least one decorator). */
function schemaFields(): string[] {
  const metas = getMetadataStorage().getTargetValidationMetadatas(EnvSchema, '', true, false);
  return [...new Set(metas.map((m) => m.propertyName))].sort();
}

describe('EnvSchema and ENV_KEYS', () => {
  it('should list the same variables both ways (a variable in only one of them is silently ignored)', () => {
    const fields = schemaFields();
    expect(fields.length).toBeGreaterThan(30);
    expect([...ENV_KEYS].sort()).toEqual(fields);
  });

  it('should list each variable once', () => {
    expect(new Set(ENV_KEYS).size).toBe(ENV_KEYS.length);
  });
});
