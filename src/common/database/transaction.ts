import type { EntityManager } from '@mikro-orm/core';

/**
 * For lock helpers (`…lockForWrite`): a row lock taken outside a transaction is released as soon as the statement
 * ends, so the "either committed before or waits for us" promise would silently not hold. Fail loudly instead.
 */
export function assertInTransaction(em: EntityManager, who: string): void {
  if (!em.isInTransaction()) {
    throw new Error(`${who} must be called inside a transaction (em.transactional)`);
  }
}
