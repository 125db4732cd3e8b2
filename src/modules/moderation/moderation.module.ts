import { Module } from '@nestjs/common';
import { builtModelDir } from './model/built-model';
import { BUILT_MODEL_DIR, ModerationService } from './moderation.service';

/** The NSFW classifier and the accept/reject policy; AppConfig comes from the global config module. */
@Module({
  providers: [ModerationService, { provide: BUILT_MODEL_DIR, useFactory: () => builtModelDir() ?? null }],
  exports: [ModerationService],
})
export class ModerationModule {}
