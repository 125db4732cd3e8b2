import { type ArgumentMetadata, ValidationPipe, type ValidationError } from '@nestjs/common';
import { AppError } from '../errors/app-error';
import { NOT_FOUND_IF_INVALID } from './id-param';

function flatten(errors: ValidationError[], parent = ''): { field: string; message: string }[] {
  return errors.flatMap((e) => {
    const field = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...flatten(e.children ?? [], field)];
  });
}

/** Every body a route takes is an object (a DTO); Nest's pipe let a JSON array through as if it were `{}`. */
class ObjectBodyValidationPipe extends ValidationPipe {
  override transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' && Array.isArray(value)) {
      throw new AppError('bad_request', 'The request body must be a JSON object.');
    }
    return super.transform(value, metadata) as Promise<unknown>;
  }
}

/** How many distinct messages the sentence of a 400 names, and how many entries its `details` lists. */
const MAX_MESSAGES = 10;
export const MAX_DETAILS = 20;

/** The global ValidationPipe: unknown fields are refused, failures become 400 bad_request with details. */
export function createValidationPipe(): ValidationPipe {
  return new ObjectBodyValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: false,
    exceptionFactory: (errors) => {
      // A malformed path id names no resource: 404 like an unknown one (IdParam), never a 400 that tells them apart.
      // (class-validator copies the context object, so it is compared by its field.)
      const notFound = (c: unknown): boolean =>
        (c as { answer?: unknown } | undefined)?.answer === NOT_FOUND_IF_INVALID.answer;
      if (errors.some((e) => Object.values(e.contexts ?? {}).some(notFound))) {
        return new AppError('not_found');
      }
      // Each message once, and a bounded answer: a query of 2,000 unknown names is not echoed back 2,000 times.
      const details = flatten(errors);
      const messages = [...new Set(details.map((d) => d.message))];
      const shown = messages.slice(0, MAX_MESSAGES);
      const more = messages.length - shown.length;
      const sentence = `${shown.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
      return new AppError('bad_request', sentence || 'Invalid request.', {
        details: details.slice(0, MAX_DETAILS),
      });
    },
  });
}
