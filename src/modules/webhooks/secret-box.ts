import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 'v1';

function deriveKey(secretKey: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secretKey, 'fixitfy-upload', 'webhook-signing-secret:v1', 32));
}

/**
 * AES-256-GCM for values that must be shown again (the webhook signing secret), with a key derived from SECRET_KEY
 * by HKDF. The owner's id is the associated data, so a sealed value copied to another account's row won't open.
 * SECRET_KEY_PREVIOUS still opens values sealed before a rotation.
 */
export class SecretBox {
  private readonly keys: Buffer[];

  constructor(secretKey: string, previousSecretKey?: string) {
    this.keys = [secretKey, previousSecretKey].filter((k): k is string => !!k).map(deriveKey);
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys[0], iv);
    cipher.setAAD(Buffer.from(context));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv, cipher.getAuthTag(), ciphertext]
      .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
      .join('.');
  }

  /** The plaintext, or null when no key opens it (tampered, wrong account, or sealed under a retired SECRET_KEY). */
  open(sealed: string, context: string): string | null {
    return this.unseal(sealed, context)?.plaintext ?? null;
  }

  /** Like open(), also saying whether it took SECRET_KEY_PREVIOUS (so the caller can seal it again under the current key). */
  unseal(sealed: string, context: string): { plaintext: string; stale: boolean } | null {
    const [version, iv, tag, ciphertext, ...rest] = sealed.split('.');
    if (version !== VERSION || rest.length > 0 || !iv || !tag || ciphertext === undefined) {
      return null;
    }
    for (const [index, key] of this.keys.entries()) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), {
          authTagLength: 16,
        });
        decipher.setAAD(Buffer.from(context));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        const plaintext = Buffer.concat([
          decipher.update(Buffer.from(ciphertext, 'base64url')),
          decipher.final(),
        ]).toString('utf8');
        return { plaintext, stale: index > 0 };
      } catch {
        // Try the previous key.
      }
    }
    return null;
  }
}
