import { Module } from '@nestjs/common';
import { ModerationService } from './moderation.service';

/** The NSFW classifier and the accept/reject policy; AppConfig comes from the global config module. */
@Module({
  providers: [ModerationService],
  exports: [ModerationService],
})
export class ModerationModule {}
