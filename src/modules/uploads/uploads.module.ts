import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { ApiKeysModule } from '../api-keys/api-keys.module';
import { StorageModule } from '../storage/storage.module';
import { ModerationModule } from '../moderation/moderation.module';
import { WebhooksModule } from '../webhooks/webhooks.module';
import { DeleteLinksController } from './delete-links.controller';
import { DeleteLinksService } from './delete-links.service';
import { ImagePool } from './image-pool.service';
import { ExpirySweepService } from './expiry-sweep.service';
import { JanitorService } from './janitor.service';
import { MeController } from './me.controller';
import { UploadController } from './upload.controller';
import { Upload } from './upload.entity';
import { UploadMapper } from './upload.mapper';
import { UploadRepository } from './upload.repository';
import { UploadPipelineService } from './upload-pipeline.service';
import { UploadsController } from './uploads.controller';
import { UploadsService } from './uploads.service';
import { UploadSlots } from './upload-slots.service';

@Module({
  imports: [
    MikroOrmModule.forFeature([Upload]),
    ApiKeysModule,
    AuthModule,
    ModerationModule,
    WebhooksModule,
    StorageModule,
  ],
  controllers: [UploadController, UploadsController, DeleteLinksController, MeController],
  providers: [
    UploadsService,
    UploadRepository,
    UploadMapper,
    DeleteLinksService,
    UploadPipelineService,
    UploadSlots,
    ImagePool,
    JanitorService,
    ExpirySweepService,
  ],
  exports: [UploadsService],
})
export class UploadsModule {}
