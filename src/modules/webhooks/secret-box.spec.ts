import { SecretBox } from './secret-box';

describe(SecretBox.name, () => {
  const key = 'k'.repeat(64);
  const user = '0b7e2a52-95d8-4b1c-9a8f-1f1f1f1f1f1f';

  it('should open what it sealed, and never store the plaintext', () => {
    const box = new SecretBox(key);
    const sealed = box.seal('whsec_abc', user);
    expect(sealed).not.toContain('whsec_abc');
    expect(box.open(sealed, user)).toBe('whsec_abc');
  });

  it('should seal the same value differently each time (random IV)', () => {
    const box = new SecretBox(key);
    expect(box.seal('whsec_abc', user)).not.toBe(box.seal('whsec_abc', user));
  });

  it("should not open a value under another account's id", () => {
    const box = new SecretBox(key);
    expect(box.open(box.seal('whsec_abc', user), 'another-user')).toBeNull();
  });

  it('should not open a tampered or truncated value', () => {
    const box = new SecretBox(key);
    const parts = box.seal('whsec_abc', user).split('.');
    const flipped = Buffer.from(parts[3], 'base64url');
    flipped[0] ^= 1;
    expect(
      box.open([parts[0], parts[1], parts[2], flipped.toString('base64url')].join('.'), user),
    ).toBeNull();
    expect(box.open([parts[0], parts[1], parts[2].slice(0, 6), parts[3]].join('.'), user)).toBeNull();
    expect(box.open('garbage', user)).toBeNull();
  });

  it('should not open with another SECRET_KEY, but should with it as the previous one', () => {
    const sealed = new SecretBox(key).seal('whsec_abc', user);
    expect(new SecretBox('x'.repeat(64)).open(sealed, user)).toBeNull();
    expect(new SecretBox('x'.repeat(64), key).open(sealed, user)).toBe('whsec_abc');
  });
});
