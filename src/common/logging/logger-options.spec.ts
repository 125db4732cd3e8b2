import type { LoggerService } from '@nestjs/common';
import { loggableUrl, QuietStartupLogger } from './logger-options';

describe(QuietStartupLogger.name, () => {
  const recorder = () => {
    const calls: [string, unknown[]][] = [];
    const inner: LoggerService = {
      log: (...a: unknown[]) => calls.push(['log', a]),
      error: (...a: unknown[]) => calls.push(['error', a]),
      warn: (...a: unknown[]) => calls.push(['warn', a]),
      debug: (...a: unknown[]) => calls.push(['debug', a]),
    };
    return { calls, logger: new QuietStartupLogger(inner) };
  };

  it('should send the route-mapping and module lines to debug', () => {
    const { calls, logger } = recorder();
    logger.log('Mapped {/api/v1/keys, POST} route', 'RouterExplorer');
    logger.log('UploadsController {/api/v1/uploads}:', 'RoutesResolver');
    logger.log('AppModule dependencies initialized', 'InstanceLoader');
    expect(calls.map(([level]) => level)).toEqual(['debug', 'debug', 'debug']);
  });

  it('should pass every other line through at its own level', () => {
    const { calls, logger } = recorder();
    logger.log('Nest application successfully started', 'NestApplication');
    logger.warn('careful', 'Webhooks');
    logger.error('boom', 'Errors');
    expect(calls).toEqual([
      ['log', ['Nest application successfully started', 'NestApplication']],
      ['warn', ['careful', 'Webhooks']],
      ['error', ['boom', 'Errors']],
    ]);
  });
});

describe(loggableUrl.name, () => {
  it('should hide the token of a delete link and leave other paths alone', () => {
    expect(loggableUrl('/api/delete/abcDEF123?x=1')).toBe('/api/delete/[redacted]?x=1');
    expect(loggableUrl('/api/v1/uploads?limit=5')).toBe('/api/v1/uploads?limit=5');
  });
});
