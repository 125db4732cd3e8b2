import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module } from '@nestjs/common';
import { PassportModule } from '@nestjs/passport';
import { BearerAuthenticator, RequestCounter } from '../../common/auth/authenticators';
import { ApiKey } from './api-key.entity';
import { ApiKeysController } from './api-keys.controller';
import { ApiKeysService } from './api-keys.service';
import { BearerStrategy } from './bearer.strategy';
import { RequestCounterService } from './request-counter.service';

@Module({
  imports: [MikroOrmModule.forFeature([ApiKey]), PassportModule],
  controllers: [ApiKeysController],
  providers: [
    ApiKeysService,
    RequestCounterService,
    BearerStrategy,
    { provide: BearerAuthenticator, useExisting: ApiKeysService },
    { provide: RequestCounter, useExisting: RequestCounterService },
  ],
  exports: [ApiKeysService, RequestCounterService, BearerAuthenticator, RequestCounter],
})
export class ApiKeysModule {}
