import { Global, Module } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { AllExceptionsFilter } from './errors/all-exceptions.filter';
import { DomainEvents } from './events/domain-events';
import { InvalidationBus } from './redis/invalidation-bus';
import { RedisModule } from './redis/redis.module';
import { Clock } from './time/clock';
import { createValidationPipe } from './validation/validation.pipe';

/** What every module uses and no module owns: the error filter, validation, Redis (and its cache invalidation bus), domain events, the clock. */
@Global()
@Module({
  imports: [RedisModule],
  providers: [
    DomainEvents,
    Clock,
    InvalidationBus,
    { provide: APP_FILTER, useClass: AllExceptionsFilter },
    { provide: APP_PIPE, useFactory: createValidationPipe },
  ],
  exports: [DomainEvents, Clock, RedisModule, InvalidationBus],
})
export class CommonModule {}
