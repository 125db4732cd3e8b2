import { Injectable } from '@nestjs/common';
import { isIP } from 'node:net';
import { AppConfig } from '../../config/app-config';
import { isPublicAddress } from './address-policy';
import { HostResolver, type ResolvedAddress } from './host-resolver';

export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** Why a webhook target was refused; the message is shown to the owner (400 at registration, or on the attempt). */
export class WebhookTargetError extends Error {
  override name = 'WebhookTargetError';
}

/** The URL's host without IPv6 brackets (`[::1]` → `::1`). */
export function bareHostname(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * SSRF: a webhook must never be a way into our network. Only http(s); the host is resolved once, every address it
 * resolves to must be public unicast (address-policy.ts), and the caller connects to exactly the address checked
 * here (no second lookup, so no DNS rebinding between check and connect). ALLOW_PRIVATE_WEBHOOKS lifts the address
 * rule for tests and private deployments, never the scheme rule.
 */
@Injectable()
export class SsrfGuard {
  constructor(
    private readonly config: AppConfig,
    private readonly resolver: HostResolver,
  ) {}

  /** Parses and checks a URL's form; throws WebhookTargetError. */
  parseUrl(raw: string): URL {
    if (raw.length > MAX_WEBHOOK_URL_LENGTH) {
      throw new WebhookTargetError(`The URL is longer than ${MAX_WEBHOOK_URL_LENGTH} characters.`);
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new WebhookTargetError('The URL is not a valid absolute URL.');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new WebhookTargetError('Only http and https URLs can receive webhooks.');
    }
    if (!url.hostname) {
      throw new WebhookTargetError('The URL has no host.');
    }
    return url;
  }

  /** Resolves the host once and checks every address; returns the one to connect to. Throws WebhookTargetError. */
  async resolveTarget(url: URL): Promise<ResolvedAddress> {
    const host = bareHostname(url);
    const literal = isIP(host);
    let addresses: ResolvedAddress[];
    if (literal) {
      addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
    } else {
      try {
        addresses = await this.resolver.resolve(host);
      } catch (err) {
        const code = (err as { code?: string }).code;
        throw new WebhookTargetError(`The host ${host} could not be resolved${code ? ` (${code})` : ''}.`);
      }
      if (addresses.length === 0) {
        throw new WebhookTargetError(`The host ${host} could not be resolved.`);
      }
    }
    if (!this.config.allowPrivateWebhooks) {
      // Every address, not just the first: a name with one public and one private record is refused.
      const refused = addresses.find((a) => !isPublicAddress(a.address));
      if (refused) {
        throw new WebhookTargetError(
          `The URL points at a non-public address (${refused.address}): loopback, private, link-local and other reserved networks are refused.`,
        );
      }
    }
    return addresses[0];
  }
}
