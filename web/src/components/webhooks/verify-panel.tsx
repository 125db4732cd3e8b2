import { DELIVERY_HEADERS, SIGNATURE_SNIPPET } from './signature-snippet';
import { CopyButton } from '../copy-button';

/** How a receiver checks a delivery: the headers, and the published Node snippet as plain text. */
export function VerifyPanel() {
  return (
    <section className="panel" aria-labelledby="verify-title">
      <h2 id="verify-title">Verify the signature</h2>
      <p>
        Every delivery is a <code>POST</code> with a JSON body. Compute HMAC-SHA256 of the raw body with your
        signing secret and compare it, in constant time, with the hex value in{' '}
        <code>X-Fixitfy-Signature</code>. Answer with any 2xx within 8 seconds; anything else is recorded as a
        failure and retried.
      </p>
      <h3>Standard Webhooks</h3>
      <p>
        Every delivery also carries the{' '}
        <a href="https://www.standardwebhooks.com/" rel="noopener noreferrer">
          Standard Webhooks
        </a>{' '}
        headers: <code>webhook-id</code> (the same as <code>X-Fixitfy-Delivery</code>; a redelivery keeps it),{' '}
        <code>webhook-timestamp</code> (unix seconds) and <code>webhook-signature</code> (<code>v1,</code> and
        the base64 HMAC-SHA256 of <code>id.timestamp.body</code>). Any Standard Webhooks library verifies them
        with your signing secret as shown, <code>whsec_…</code> included, e.g.{' '}
        <code>new Webhook(secret).verify(rawBody, headers)</code> in the <code>standardwebhooks</code> npm
        package.
      </p>
      <dl className="headers">
        {DELIVERY_HEADERS.map((h) => (
          <div key={h.name}>
            <dt>
              <code>{h.name}</code>
            </dt>
            <dd>{h.value}</dd>
          </div>
        ))}
      </dl>
      <div className="snippet-head">
        <h3>Node.js</h3>
        <CopyButton
          text={SIGNATURE_SNIPPET}
          label="Copy the Node.js verification code"
          className="button button-small"
        />
      </div>
      <pre className="code">{SIGNATURE_SNIPPET}</pre>
    </section>
  );
}
