import { keepOrtTelemetryOff } from './ort-telemetry';

describe(keepOrtTelemetryOff.name, () => {
  it('should turn the telemetry off when the variable is not set', () => {
    const env: NodeJS.ProcessEnv = {};
    keepOrtTelemetryOff(env);
    expect(env.ORT_DISABLE_TELEMETRY).toBe('1');
  });

  it("should keep the operator's own value, whatever it is", () => {
    for (const value of ['0', '1', '']) {
      const env: NodeJS.ProcessEnv = { ORT_DISABLE_TELEMETRY: value };
      keepOrtTelemetryOff(env);
      expect(env.ORT_DISABLE_TELEMETRY).toBe(value);
    }
  });
});
