import { decideModeration, isExplicit } from './moderation-policy';
import type { ModerationScores } from './moderation.types';

const thresholds = { pornHentaiThreshold: 0.7, pornThreshold: 0.5 };

function scores(partial: Partial<ModerationScores>): ModerationScores {
  const s = { drawing: 0, hentai: 0, neutral: 0, porn: 0, sexy: 0, ...partial };
  const rest = 1 - (s.drawing + s.hentai + s.porn + s.sexy);
  return { ...s, neutral: partial.neutral ?? Math.max(0, rest) };
}

describe('moderation policy', () => {
  describe(isExplicit.name, () => {
    it('should reject when porn + hentai reaches the combined threshold', () => {
      expect(isExplicit(scores({ porn: 0.35, hentai: 0.35 }), thresholds)).toBe(true);
    });

    it('should accept when porn + hentai stays just under the combined threshold', () => {
      expect(isExplicit(scores({ porn: 0.3, hentai: 0.39 }), thresholds)).toBe(false);
    });

    it('should reject when porn alone reaches its threshold', () => {
      expect(isExplicit(scores({ porn: 0.5 }), thresholds)).toBe(true);
    });

    it('should accept porn just under its threshold without hentai', () => {
      expect(isExplicit(scores({ porn: 0.49 }), thresholds)).toBe(false);
    });

    it('should reject hentai alone once it reaches the combined threshold', () => {
      expect(isExplicit(scores({ hentai: 0.7 }), thresholds)).toBe(true);
    });

    it('should never reject on sexy alone', () => {
      expect(isExplicit(scores({ sexy: 1 }), thresholds)).toBe(false);
    });

    it('should never reject on drawing alone', () => {
      expect(isExplicit(scores({ drawing: 1 }), thresholds)).toBe(false);
    });

    it('should not count sexy towards the combined score', () => {
      expect(isExplicit(scores({ sexy: 0.6, porn: 0.3, hentai: 0.3 }), thresholds)).toBe(false);
    });

    it('should follow configured thresholds', () => {
      expect(isExplicit(scores({ porn: 0.3 }), { pornHentaiThreshold: 0.9, pornThreshold: 0.25 })).toBe(true);
    });
  });

  describe(decideModeration.name, () => {
    it('should report the most explicit input when all are accepted', () => {
      const inputs = [scores({ porn: 0.1 }), scores({ porn: 0.2, hentai: 0.3 }), scores({ hentai: 0.05 })];
      expect(decideModeration(inputs, thresholds)).toEqual({ rejected: false, scores: inputs[1] });
    });

    it('should reject when any single input is explicit', () => {
      const inputs = [scores({ neutral: 1 }), scores({ neutral: 1 }), scores({ porn: 0.9 })];
      expect(decideModeration(inputs, thresholds)).toEqual({ rejected: true, scores: inputs[2] });
    });

    it('should report a rejected input even when another has a higher porn + hentai', () => {
      // porn 0.55 rejects on porn alone; the other input has more porn + hentai but passes both rules.
      const inputs = [scores({ porn: 0.55 }), scores({ hentai: 0.6, porn: 0.05 })];
      expect(decideModeration(inputs, thresholds)).toEqual({ rejected: true, scores: inputs[0] });
    });

    it('should refuse to decide on nothing', () => {
      expect(() => decideModeration([], thresholds)).toThrow();
    });
  });
});
