import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { EntityManager } from '@mikro-orm/postgresql';
import { Public } from '../../common/auth/auth.decorator';
import { AppError } from '../../common/errors/app-error';
import { ApiErrorResponsesWithoutDatabase } from '../../common/errors/error-response';
import { RedisService } from '../../common/redis/redis.module';
import { ModerationService } from '../moderation/moderation.service';
import { StorageDriver } from '../storage/storage-driver';
import { withTimeout } from '../../common/time/timeout';

/** How long /readyz waits for each dependency. */
const READY_CHECK_TIMEOUT_MS = 2000;

/** True when `work` settles successfully (and `ok` holds) within `ms`; false on failure or timeout. */
function withDeadline<T>(work: Promise<T>, ms: number, ok: (v: T) => boolean = () => true): Promise<boolean> {
  return withTimeout(
    work.then(ok, () => false),
    ms,
    () => new Error('late'),
  ).catch(() => false);
}

class HealthResponse {
  @ApiProperty({ example: true }) ok!: true;
}

class ReadyChecks {
  @ApiProperty() database!: boolean;
  @ApiProperty() redis!: boolean;
  @ApiProperty() storage!: boolean;
  @ApiProperty() moderation!: boolean;
}

class ReadyResponse extends HealthResponse {
  @ApiProperty({ type: ReadyChecks }) checks!: ReadyChecks;
}

@ApiTags('Operations')
@Controller()
@Public()
export class HealthController {
  constructor(
    private readonly em: EntityManager,
    private readonly redis: RedisService,
    private readonly storage: StorageDriver,
    private readonly moderation: ModerationService,
  ) {}

  @Get('healthz')
  @ApiOperation({ operationId: 'checkHealth', summary: 'The process is alive' })
  @ApiOkResponse({ type: HealthResponse })
  // Like every route: a request body that is not valid JSON (with a JSON content type) answers 400.
  @ApiErrorResponsesWithoutDatabase('bad_request')
  healthz(): HealthResponse {
    return { ok: true };
  }

  @Get('readyz')
  @ApiOperation({
    operationId: 'checkReadiness',
    summary: 'Database, Redis, storage and the moderation model are ready',
  })
  @ApiOkResponse({ type: ReadyResponse })
  // A database that fails the check makes it unavailable (503), never db_failed.
  @ApiErrorResponsesWithoutDatabase('bad_request', 'unavailable')
  async readyz(): Promise<ReadyResponse> {
    // Each check has a deadline: a dependency that accepts connections and never answers is not ready, and
    // /readyz must say so within a load balancer's probe timeout instead of hanging with it.
    const [database, redis, storage] = await Promise.all([
      withDeadline(this.em.getConnection().execute('select 1'), READY_CHECK_TIMEOUT_MS),
      this.redis.ping(READY_CHECK_TIMEOUT_MS),
      withDeadline(this.storage.healthy(), READY_CHECK_TIMEOUT_MS, (ok) => ok),
    ]);
    const checks = { database, redis, storage, moderation: this.moderation.isReady() };
    const down = Object.entries(checks)
      .filter(([, ok]) => !ok)
      .map(([name]) => name);
    if (down.length > 0) {
      throw new AppError('unavailable', `Not ready: ${down.join(', ')}.`);
    }
    return { ok: true, checks };
  }
}
