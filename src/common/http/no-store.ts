import { Header } from '@nestjs/common';

/**
 * For an answer that carries a secret (a key's or token's value, a signing secret, a delete link, a CSRF token): no
 * browser cache, disk cache or proxy keeps a copy. Errors already go out with it (all-exceptions.filter).
 */
export const NoStore = (): MethodDecorator => Header('Cache-Control', 'no-store');
