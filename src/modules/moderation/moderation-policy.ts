import type { ModerationScores } from './moderation.types';

export interface ModerationThresholds {
  /** Reject when porn + hentai reaches this. */
  pornHentaiThreshold: number;
  /** Reject when porn alone reaches this. */
  pornThreshold: number;
}

export interface ModerationDecision {
  rejected: boolean;
  /** The most explicit (highest porn + hentai) of the rejected inputs, or of all inputs when none is. */
  scores: ModerationScores;
}

const explicitness = (s: ModerationScores): number => s.porn + s.hentai;

/** Sexy and Drawing never reject on their own: they cover swimwear, art and cartoons. */
export function isExplicit(scores: ModerationScores, t: ModerationThresholds): boolean {
  return explicitness(scores) >= t.pornHentaiThreshold || scores.porn >= t.pornThreshold;
}

/** One explicit input (a frame, or a frame over one background) rejects the whole image. */
export function decideModeration(
  inputs: readonly ModerationScores[],
  t: ModerationThresholds,
): ModerationDecision {
  if (inputs.length === 0) {
    throw new Error('Nothing was classified');
  }
  const rejected = inputs.filter((s) => isExplicit(s, t));
  const pool = rejected.length > 0 ? rejected : inputs;
  const scores = pool.reduce((a, b) => (explicitness(b) > explicitness(a) ? b : a));
  return { rejected: rejected.length > 0, scores };
}
