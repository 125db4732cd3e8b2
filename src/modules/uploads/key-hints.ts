import type { KeyPrincipal } from '../../common/auth/principal';
import { INVALIDATE_ALL, type InvalidationBus } from '../../common/redis/invalidation-bus';

/** Keys per instance: far more than the keys busy on one instance at once; a few MB at most. */
const MAX_HINTS = 10_000;

/**
 * What the read fast path last verified, per API key (by the token's SHA-256, never the token): the principal the
 * key lookup gave. It is a hint, never an answer. The read fast path uses it to ask a request's rate limit while the
 * key lookup (and the data statement in it) runs, instead of after it; the lookup is still made on every request, and
 * only its result decides the answer, the body and the request count. What a hint can get wrong is what was started
 * before the lookup said no: the rate-limit slot of a request that then answers 401 or 403. So a hint
 * is dropped when a lookup says no, and on every instance at once when its key is revoked (`key:<id>`) or its owner
 * banned or unbanned (`owner:<user id>`); and hints are used only while this instance's invalidation subscription is
 * confirmed (InvalidationBus.ready). A key's user and id never change, so a hint's rate limit is always the budget
 * of the key the lookup will name.
 */
export class KeyHints {
  private readonly hints = new Map<string, KeyPrincipal>();
  private epoch = 0;

  constructor(private readonly bus: InvalidationBus) {
    bus.listen((what) => this.invalidate(what));
  }

  /** Take before the lookup whose result you will remember. */
  mark(): number {
    return this.epoch;
  }

  get(tokenHash: string): KeyPrincipal | undefined {
    if (!this.bus.ready) {
      return undefined;
    }
    return this.hints.get(tokenHash);
  }

  /** Remembers a lookup's principal, unless an invalidation arrived since `mark` (it may predate a revoke). */
  remember(tokenHash: string, principal: KeyPrincipal, mark: number): void {
    if (mark !== this.epoch || !this.bus.ready) {
      return;
    }
    if (!this.hints.has(tokenHash) && this.hints.size >= MAX_HINTS) {
      this.hints.delete(this.hints.keys().next().value as string);
    }
    this.hints.set(tokenHash, principal);
  }

  drop(tokenHash: string): void {
    this.epoch++;
    this.hints.delete(tokenHash);
  }

  /** `key:<key id>`, `owner:<user id>` or INVALIDATE_ALL (InvalidationBus); other messages concern other caches. */
  private invalidate(what: string): void {
    if (what === INVALIDATE_ALL) {
      this.epoch++;
      this.hints.clear();
      return;
    }
    const colon = what.indexOf(':');
    const [kind, id] = [what.slice(0, colon), what.slice(colon + 1)];
    if (kind !== 'key' && kind !== 'owner') {
      return;
    }
    this.epoch++;
    for (const [hash, principal] of this.hints) {
      if ((kind === 'key' ? principal.keyId : principal.userId) === id) {
        this.hints.delete(hash);
      }
    }
  }
}
