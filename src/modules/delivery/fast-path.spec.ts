import type { ServableUpload } from '../uploads/uploads.service';
import { originalOf } from './fast-path';

const row = (storedSha256: string): ServableUpload => ({
  id: 'u1',
  ownerId: 'o1',
  filename: 'FIXITFY-aaaaaaaaaaaa.png',
  storedSha256,
  size: 10,
  mime: 'image/png',
  createdAt: new Date('2026-12-03T13:00:00Z'),
  pages: 1,
  expiresAt: null,
});

/** originalOf describes a row once and reuses that for the row (the fast path's 304s), never for another row. */
describe('originalOf', () => {
  it('should describe the original as the direct link answers it', () => {
    expect(originalOf(row('abc'))).toEqual({
      key: 'FIXITFY-aaaaaaaaaaaa.png',
      etag: '"abc"',
      size: 10,
      mime: 'image/png',
      lastModified: new Date('2026-12-03T13:00:00Z'),
      lastModifiedText: 'Thu, 03 Dec 2026 13:00:00 GMT',
      expiresAt: null,
    });
  });

  it('should reuse the description of one row, and describe a row read again afresh', () => {
    const first = row('abc');
    expect(originalOf(first)).toBe(originalOf(first));
    // The same file re-read (a new row object) after its bytes changed: its own ETag, not the first row's.
    expect(originalOf(row('def')).etag).toBe('"def"');
  });
});
