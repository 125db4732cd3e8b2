import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { AppError } from '../../common/errors/app-error';
import { AppConfig } from '../../config/app-config';
import { decideModeration } from './moderation-policy';
import type { ModerationVerdict } from './moderation.types';
import { ensureNsfwModel } from './model/nsfw-model-cache';
import { NsfwClassifier } from './nsfw-classifier';

/**
 * Reviews images with the NSFW classifier and the configured policy. A failed load stays failed (logged, not
 * ready) until restart; an inference worker that dies is replaced on the next review or whenReady().
 */
@Injectable()
export class ModerationService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ModerationService.name);
  private classifier: NsfwClassifier | undefined;
  private loading: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly config: AppConfig) {}

  /**
   * Starts loading (and, the first time, converting) the model without holding up boot; /readyz waits for it.
   */
  onModuleInit(): void {
    if (this.config.moderation.enabled) {
      this.whenReady().catch(() => undefined);
    }
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    await this.loading?.catch(() => undefined);
    const classifier = this.classifier;
    this.classifier = undefined;
    await classifier?.close();
  }

  isReady(): boolean {
    return !this.config.moderation.enabled || (this.classifier !== undefined && !this.classifier.failure);
  }

  /**
   * Resolves once the model is loaded (immediately when moderation is disabled); rejects if loading failed.
   */
  whenReady(): Promise<void> {
    if (!this.config.moderation.enabled) {
      return Promise.resolve();
    }
    if (this.classifier?.failure) {
      // The inference worker died: start over with a fresh one.
      this.logger.error(
        `The moderation model stopped working: ${this.classifier.failure.message}; reloading`,
      );
      this.classifier = undefined;
      this.loading = undefined;
    }
    this.loading ??= this.load();
    return this.loading;
  }

  async review(image: Buffer): Promise<ModerationVerdict> {
    const { moderation } = this.config;
    if (!moderation.enabled) {
      return { rejected: false, scores: null, frames: 0 };
    }
    const classifier = this.classifier;
    if (!classifier || classifier.failure) {
      if (classifier?.failure) {
        this.whenReady().catch(() => undefined);
      }
      throw new AppError(
        'unavailable',
        'The moderation model is not loaded; uploads are refused until it is.',
      );
    }
    const { frames, scores } = await classifier.classify(image);
    const decision = decideModeration(scores, moderation);
    return { rejected: decision.rejected, scores: decision.scores, frames };
  }

  private async load(): Promise<void> {
    const { moderation, dataDir } = this.config;
    const started = Date.now();
    try {
      const modelPath = moderation.modelPath ?? (await ensureNsfwModel(dataDir));
      const classifier = await NsfwClassifier.load(modelPath, {
        threads: moderation.threads,
        concurrency: moderation.concurrency,
        frames: moderation.frames,
      });
      if (this.closed) {
        await classifier.close();
        return;
      }
      this.classifier = classifier;
      this.logger.log(`Moderation model ${modelPath} loaded in ${Date.now() - started} ms`);
    } catch (e) {
      this.logger.error(`Cannot load the moderation model: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
  }
}
