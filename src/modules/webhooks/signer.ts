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

/** Every header API.md (Part 1, Webhooks) puts on a delivery. */
export function webhookHeaders(req: SignedRequest): Record<string, string> {
  return {
    'Content-Type': 'application/json',
    'User-Agent': 'Fixitfy-Webhooks/1.0',
    'X-Fixitfy-Event': req.event,
    'X-Fixitfy-Signature': signBody(req.body, req.secret),
    'X-Fixitfy-Delivery': req.deliveryId,
    'X-Fixitfy-Timestamp': String(Math.floor((req.at ?? new Date()).getTime() / 1000)),
  };
}
