import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
  Optional,
} from '@nestjs/common';
import { AppError } from '../../common/errors/app-error';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { Metrics } from '../../common/metrics/metrics.service';
import { withTimeout } from '../../common/time/timeout';
import { AppConfig } from '../../config/app-config';
import type { ReviewFrame } from '../media/decode';
import { decideModeration } from './moderation-policy';
import type { ModerationVerdict } from './moderation.types';
import { builtModelDir, verifyBuiltModel } from './model/built-model';
import { NsfwClassifier } from './nsfw-classifier';

/**
 * Reviews images with the NSFW classifier and the configured policy. A failed load stays failed (logged, not
 * ready) until restart; an inference worker that dies is replaced on the next review or whenReady().
 */
/** How long a review waits for the model of a process that is still loading it, before answering `unavailable`. */
const LOAD_WAIT_MS = 15_000;

/** Where the built model is (dist/model); null from the TypeScript sources. Tests point it elsewhere. */
export const BUILT_MODEL_DIR = Symbol('BUILT_MODEL_DIR');

@Injectable()
export class ModerationService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ModerationService.name);
  private classifier: NsfwClassifier | undefined;
  private loading: Promise<void> | undefined;
  private closed = false;

  private readonly builtModelDir: string | null;

  constructor(
    private readonly config: AppConfig,
    @Optional() @Inject(BUILT_MODEL_DIR) builtDir?: string | null,
    @Optional() private readonly roles?: ProcessRoleService,
    @Optional() private readonly metrics?: Metrics,
  ) {
    this.builtModelDir = builtDir === undefined ? (builtModelDir() ?? null) : builtDir;
  }

  /**
   * Starts loading (and, from the TypeScript sources the first time, converting) the model without holding up boot; /readyz waits for it.
   * Only in the roles that review uploads (common/jobs/process-role.ts): the worker and the CLI never load it.
   */
  onModuleInit(): void {
    if (this.config.moderation.enabled && (this.roles?.starts('model') ?? true)) {
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

  /** How many frames of an upload the review wants decoded (MODERATION_FRAMES); 0 when moderation is off. */
  get reviewFrames(): number {
    return this.config.moderation.enabled ? this.config.moderation.frames : 0;
  }

  /**
   * Reviews the frames media decoded for it (decodeFrames with reviewFrames: full resolution, orientation applied,
   * 8-bit sRGB(A)), or their model inputs when the heavy-image process decoded them; moderation itself never decodes.
   */
  async review(frames: readonly ReviewFrame[]): Promise<ModerationVerdict> {
    const { moderation } = this.config;
    if (!moderation.enabled) {
      return { rejected: false, scores: null, frames: 0 };
    }
    if (!this.classifier && this.loading) {
      // Still loading: the process has just started (in a cluster, one process can take connections while another
      // still loads). The upload waits for it, as long as a load takes; a load that failed answers at once.
      await withTimeout(this.loading, LOAD_WAIT_MS, () => new Error('late')).catch(() => undefined);
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
    const timer = this.metrics?.moderationDuration.startTimer();
    const { frames: classified, scores } = await classifier.classify(frames).catch((err: unknown) => {
      this.metrics?.moderationVerdicts.inc({ verdict: 'error' });
      timer?.({ verdict: 'error' });
      throw err;
    });
    const decision = decideModeration(scores, moderation);
    const verdict = decision.rejected ? 'rejected' : 'accepted';
    this.metrics?.moderationVerdicts.inc({ verdict });
    timer?.({ verdict });
    return { rejected: decision.rejected, scores: decision.scores, frames: classified };
  }

  private async load(): Promise<void> {
    const { moderation, dataDir } = this.config;
    const started = Date.now();
    try {
      const modelPath = moderation.modelPath ?? (await this.nsfwModelPath(dataDir));
      const classifier = await NsfwClassifier.load(modelPath, {
        threads: moderation.threads,
        sessionThreads: moderation.sessionThreads,
        soloThreads: moderation.soloThreads,
        concurrency: moderation.concurrency,
      });
      if (this.closed) {
        await classifier.close();
        return;
      }
      this.classifier = classifier;
      this.logger.log(`Moderation model ${modelPath} loaded in ${Date.now() - started} ms`);
      // Loaded after the others: without it every review still runs, on the other sessions.
      void classifier.soloLoaded.then(() => {
        if (classifier.soloFailure) {
          this.logger.warn(
            `The single-input moderation session did not load, so the other sessions take every review: ${classifier.soloFailure.message}`,
          );
        }
      });
    } catch (e) {
      this.logger.error(`Cannot load the moderation model: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
  }

  /**
   * The compiled server loads the model `npm run build` made, after checking its sha256. From the TypeScript
   * sources (ts-node, jest) it converts nsfwjs' model into DATA_DIR/models once; the converter (and nsfwjs)
   * is loaded only then, so the production image does without both.
   */
  private async nsfwModelPath(dataDir: string): Promise<string> {
    if (this.builtModelDir !== null) {
      return verifyBuiltModel(this.builtModelDir);
    }
    const { ensureNsfwModel } = await import('./model/nsfw-model-cache');
    return ensureNsfwModel(dataDir);
  }
}
