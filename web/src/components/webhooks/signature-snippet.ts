/**
 * The published API document's Node snippet for checking X-Fixitfy-Signature (section 10), line for line. Shown
 * as text in a <pre>; test/browser checks a delivery with exactly this code.
 */
export const SIGNATURE_SNIPPET = [
  'import { createHmac, timingSafeEqual } from "node:crypto";',
  'const received = req.headers["x-fixitfy-signature"].split("=")[1];',
  'const expected = createHmac("sha256", SIGNING_SECRET).update(rawBody).digest("hex");',
  'const valid = timingSafeEqual(Buffer.from(received), Buffer.from(expected));',
].join('\n');

/** The headers of every delivery (API.md Part 1, "Webhooks"), as the page lists them. */
export const DELIVERY_HEADERS: { name: string; value: string }[] = [
  { name: 'X-Fixitfy-Event', value: 'upload.created (or ping for a test)' },
  {
    name: 'X-Fixitfy-Signature',
    value: 'sha256=<hex HMAC-SHA256 of the raw body, keyed with the signing secret>',
  },
  { name: 'X-Fixitfy-Delivery', value: 'a uuid, the same on every retry of one delivery' },
  { name: 'X-Fixitfy-Timestamp', value: 'unix seconds' },
];
