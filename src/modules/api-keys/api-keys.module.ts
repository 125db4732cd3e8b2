import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module } from '@nestjs/common';
import { BearerAuthenticator, RequestCounter } from '../../common/auth/authenticators';
import { AuthModule } from '../auth/auth.module';
import { WebhooksModule } from '../webhooks/webhooks.module';
import { ApiKey } from './api-key.entity';
import { ApiKeysController } from './api-keys.controller';
import { ClientsController } from './clients.controller';
import { ApiKeysService } from './api-keys.service';
import { RequestCounterService } from './request-counter.service';
import { UploadTokensController } from './upload-tokens.controller';
import { UploadTokenUsesService } from './upload-token-uses.service';
import { UploadTokensService } from './upload-tokens.service';

@Module({
  imports: [MikroOrmModule.forFeature([ApiKey]), WebhooksModule, AuthModule],
  controllers: [ApiKeysController, UploadTokensController, ClientsController],
  providers: [
    ApiKeysService,
    UploadTokensService,
    UploadTokenUsesService,
    RequestCounterService,
    { provide: BearerAuthenticator, useExisting: ApiKeysService },
    { provide: RequestCounter, useExisting: RequestCounterService },
  ],
  exports: [
    ApiKeysService,
    UploadTokenUsesService,
    RequestCounterService,
    BearerAuthenticator,
    RequestCounter,
  ],
})
export class ApiKeysModule {}
