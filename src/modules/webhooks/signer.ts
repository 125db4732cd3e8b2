import { createHmac, randomBytes } from 'node:crypto';

/**
 * A new signing secret: `whsec_` + 64 hex characters (32 random bytes). Receivers use the whole string, as shown,
 * as the HMAC key (published doc, section 10: `createHmac("sha256", SIGNING_SECRET)`).
 */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('hex')}`;
}

/** X-Fixitfy-Signature: `sha256=` + hex HMAC-SHA256 of the raw body bytes, keyed with the secret string. */
export function signBody(rawBody: string | Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

export interface SignedRequest {
  event: string;
  deliveryId: string;
  body: string;
  secret: string;
  /** Defaults to now. */
  at?: Date;
}

/**
 * The Standard Webhooks signature (API.md Part 3): `v1,` + base64 HMAC-SHA256 of `<id>.<timestamp>.<body>`, keyed
 * with the bytes a Standard Webhooks library takes from the secret: the part after `whsec_`, base64-decoded (our
 * 64 hex characters read as base64, i.e. 48 bytes; not their hex value).
 */
export function standardSignature(id: string, timestamp: string, body: string, secret: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** Every header API.md (Part 1, Webhooks; Part 3, the Standard Webhooks ones) puts on a delivery. */
export function webhookHeaders(req: SignedRequest): Record<string, string> {
  const timestamp = String(Math.floor((req.at ?? new Date()).getTime() / 1000));
  return {
    'Content-Type': 'application/json',
    'User-Agent': 'Fixitfy-Webhooks/1.0',
    'X-Fixitfy-Event': req.event,
    'X-Fixitfy-Signature': signBody(req.body, req.secret),
    'X-Fixitfy-Delivery': req.deliveryId,
    'X-Fixitfy-Timestamp': timestamp,
    'webhook-id': req.deliveryId,
    'webhook-timestamp': timestamp,
    'webhook-signature': standardSignature(req.deliveryId, timestamp, req.body, req.secret),
  };
}
