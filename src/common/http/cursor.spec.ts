import { encodeCursor, parseCursor } from './cursor';

describe('cursor', () => {
  const a = { createdAt: new Date('2026-05-01T12:00:00.000Z'), id: '0b7e1b8e-2f0f-4b43-9d3e-0e7c9b0d7a11' };

  it('should emit a plain ISO timestamp when the next row is strictly older', () => {
    expect(encodeCursor(a, { createdAt: new Date('2026-05-01T11:59:59.999Z') })).toBe(
      '2026-05-01T12:00:00.000Z',
    );
  });

  it('should append the id when the next row shares the timestamp', () => {
    expect(encodeCursor(a, { createdAt: a.createdAt })).toBe(`2026-05-01T12:00:00.000Z~${a.id}`);
  });

  it('should emit null on the last page', () => {
    expect(encodeCursor(a, undefined)).toBeNull();
  });

  it('should round-trip both forms', () => {
    expect(parseCursor('2026-05-01T12:00:00.000Z')).toEqual({ createdAt: a.createdAt, id: null });
    expect(parseCursor(`2026-05-01T12:00:00.000Z~${a.id}`)).toEqual(a);
    expect(parseCursor(undefined)).toBeNull();
  });

  it.each(['yesterday', '2026-05-01', '2026-05-01T12:00:00.000Z~nope', '2026-13-01T12:00:00.000Z', 'a~b~c'])(
    'should refuse %s with bad_request',
    (raw) => {
      expect(() => parseCursor(raw)).toThrow(expect.objectContaining({ code: 'bad_request' }));
    },
  );
});
