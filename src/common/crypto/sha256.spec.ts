import { createHash, randomBytes } from 'node:crypto';
import { loopTurnsDuring } from '../../../test/setup/event-loop';
import { sha256Hex, sha256HexAsync } from './sha256';

describe('sha256Hex', () => {
  // Stored token hashes were made with createHash().update(token): a key made before must still be found.
  it.each(['fxf_AbC-_0123456789abcdefghijklmnopqrstuv', 'ut_é✓ not ASCII', ''])(
    'should hash the string %p as its UTF-8 bytes, as createHash().update() does',
    (text) => {
      expect(sha256Hex(text)).toBe(createHash('sha256').update(text).digest('hex'));
    },
  );

  it('should give the standard digest of "abc"', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('sha256HexAsync', () => {
  it.each([0, 1, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 5 * 1024 * 1024 + 17])(
    'should equal the one-shot hash of %i bytes',
    async (size) => {
      const data = randomBytes(size);
      const expected = createHash('sha256').update(data).digest('hex');
      expect(await sha256HexAsync(data)).toBe(expected);
      expect(sha256Hex(data)).toBe(expected);
    },
  );

  it('should let the event loop turn between slices of a big input', async () => {
    // A 20 MB upload: other work scheduled meanwhile runs before the hash is done, not after.
    const turns = await loopTurnsDuring(() => sha256HexAsync(Buffer.alloc(20 * 1024 * 1024, 7)));
    expect(turns).toBeGreaterThanOrEqual(19);
  });
});
