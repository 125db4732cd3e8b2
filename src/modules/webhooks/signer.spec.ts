import { Webhook as StandardWebhook } from 'standardwebhooks';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { newSigningSecret, signBody, standardSignature, webhookHeaders } from './signer';

/** The receiver in the published doc (section 10), verbatim apart from the variables it reads. */
function publishedVerify(header: string, rawBody: string | Buffer, SIGNING_SECRET: string): boolean {
  const received = header.split('=')[1];
  const expected = createHmac('sha256', SIGNING_SECRET).update(rawBody).digest('hex');
  return timingSafeEqual(Buffer.from(received), Buffer.from(expected));
}

describe('webhook signer', () => {
  const body =
    '{"event":"upload.created","upload":{"filename":"FIXITFY-aB3xZ7nQrL9p.png"},"timestamp":"2026-06-01T12:00:00.000Z"}';

  it('should make secrets of 32 random bytes, shown as whsec_ + 64 hex', () => {
    const a = newSigningSecret();
    expect(a).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect(newSigningSecret()).not.toBe(a);
  });

  it('should sign as sha256=<hex HMAC-SHA256(raw body, secret)>', () => {
    expect(signBody(body, 'whsec_test')).toBe(
      `sha256=${createHmac('sha256', 'whsec_test').update(body).digest('hex')}`,
    );
    expect(signBody(body, 'whsec_test')).toMatch(/^sha256=[0-9a-f]{64}$/);
  });

  it('should produce signatures the published Node snippet accepts', () => {
    const secret = newSigningSecret();
    expect(publishedVerify(signBody(body, secret), body, secret)).toBe(true);
    expect(publishedVerify(signBody(body, secret), Buffer.from(body), secret)).toBe(true);
  });

  it('should produce signatures the published snippet rejects for another secret or another body', () => {
    const secret = newSigningSecret();
    expect(publishedVerify(signBody(body, secret), body, newSigningSecret())).toBe(false);
    expect(publishedVerify(signBody(body, secret), body.replace('aB3x', 'aB3y'), secret)).toBe(false);
  });

  it('should sign non-ASCII bodies over their UTF-8 bytes', () => {
    const unicode = '{"event":"ping","note":"çığ ✓"}';
    const secret = newSigningSecret();
    expect(publishedVerify(signBody(unicode, secret), Buffer.from(unicode, 'utf8'), secret)).toBe(true);
  });

  it('should set every header of the contract', () => {
    const headers = webhookHeaders({
      event: 'upload.created',
      deliveryId: '3f9a8c1e-0000-4000-8000-000000000000',
      body,
      secret: 'whsec_test',
      at: new Date('2026-06-01T12:00:00.900Z'),
    });
    expect(headers).toMatchObject({
      'Content-Type': 'application/json',
      'X-Fixitfy-Event': 'upload.created',
      'X-Fixitfy-Signature': signBody(body, 'whsec_test'),
      'X-Fixitfy-Delivery': '3f9a8c1e-0000-4000-8000-000000000000',
      'X-Fixitfy-Timestamp': String(Date.UTC(2026, 5, 1, 12, 0, 0) / 1000),
    });
  });

  it('should make the Standard Webhooks signature the standardwebhooks library makes for the same secret', () => {
    const secret = newSigningSecret();
    const at = new Date('2026-06-01T12:00:00.000Z');
    const id = '3f9a8c1e-0000-4000-8000-000000000000';
    const theirs = new StandardWebhook(secret).sign(id, at, body);
    expect(standardSignature(id, String(at.getTime() / 1000), body, secret)).toBe(theirs);
    const headers = webhookHeaders({ event: 'upload.created', deliveryId: id, body, secret, at });
    expect(headers['webhook-signature']).toBe(theirs);
    expect(headers['webhook-id']).toBe(id);
    expect(headers['webhook-timestamp']).toBe(headers['X-Fixitfy-Timestamp']);
  });
});
