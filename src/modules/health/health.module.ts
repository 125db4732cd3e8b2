import { Module } from '@nestjs/common';
import { ModerationModule } from '../moderation/moderation.module';
import { UploadsModule } from '../uploads/uploads.module';
import { HealthController } from './health.controller';

@Module({ imports: [UploadsModule, ModerationModule], controllers: [HealthController] })
export class HealthModule {}
