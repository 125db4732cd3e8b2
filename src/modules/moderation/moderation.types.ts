/** The five class scores of the nsfwjs classifier, in its fixed order. */
export interface ModerationScores {
  drawing: number;
  hentai: number;
  neutral: number;
  porn: number;
  sexy: number;
}

export interface ModerationVerdict {
  /** True when the policy blocks the upload (API.md: 415 nsfw_rejected). */
  rejected: boolean;
  /** The scores of the frame that decided (the most explicit frame); null when moderation is disabled. */
  scores: ModerationScores | null;
  /** How many frames were classified. */
  frames: number;
}
