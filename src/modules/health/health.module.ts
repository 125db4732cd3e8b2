import { Module } from '@nestjs/common';
import { ModerationModule } from '../moderation/moderation.module';
import { StorageModule } from '../storage/storage.module';
import { HealthController } from './health.controller';

@Module({ imports: [StorageModule, ModerationModule], controllers: [HealthController] })
export class HealthModule {}
