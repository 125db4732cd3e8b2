import { FILENAME_PATTERN, newFilename, randomBase62 } from './filenames';

describe('filenames', () => {
  it('should make FIXITFY- + 12 base62 + the extension', () => {
    for (const ext of ['png', 'jpg', 'gif', 'webp', 'avif']) {
      expect(newFilename(ext)).toMatch(FILENAME_PATTERN);
    }
  });

  it('should use every base62 character and repeat no name in 10000 draws', () => {
    const names = new Set(Array.from({ length: 10000 }, () => newFilename('png')));
    expect(names.size).toBe(10000);
    const chars = new Set(randomBase62(20000));
    expect(chars.size).toBe(62);
  });
});
