import { SetMetadata } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import type { HeadersObject, ResponseObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { DECORATORS } from '@nestjs/swagger/dist/constants';
import { ErrorResponse } from '../errors/error-response';

export const RATE_LIMIT_GROUP = 'fxf:rate-limit-group';

/** API.md "Rate limits": uploads (per minute and per day) and the management API (per minute), per key. */
export type RateLimitGroup = 'uploads' | 'management';

/** The @nestjs/throttler throttler names, the group each belongs to, and the error code its refusal carries. */
export const THROTTLERS = {
  'uploads-minute': { group: 'uploads', code: 'rate_limit' },
  'uploads-day': { group: 'uploads', code: 'rate_limit_day' },
  management: { group: 'management', code: 'rate_limit' },
} as const satisfies Record<string, { group: RateLimitGroup; code: 'rate_limit' | 'rate_limit_day' }>;

export type ThrottlerName = keyof typeof THROTTLERS;

const integer = { type: 'integer' } as const;

const LIMIT_HEADERS: HeadersObject = {
  'X-RateLimit-Limit': {
    description:
      'The limit of the window reported (the one with the fewest requests left; on a 429, the one that refused).',
    schema: integer,
  },
  'X-RateLimit-Remaining': { description: 'Requests that window still admits now.', schema: integer },
  'X-RateLimit-Reset': {
    description:
      'Seconds until that window frees a slot (its oldest counted request leaves the sliding window); on a 429, ' +
      'equal to Retry-After.',
    schema: integer,
  },
};

const REFUSED_HEADERS: HeadersObject = {
  'Retry-After': {
    description: 'Seconds to wait; a retry after this long is admitted (if nothing else used the slot).',
    schema: integer,
  },
  ...LIMIT_HEADERS,
};

const GROUP_DOCS: Record<RateLimitGroup, string> = {
  uploads:
    'Rate limited per key (an upload token counts as its minting key, a session per user): uploads per minute ' +
    '(`rate_limit`) and per day (`rate_limit_day`), sliding windows shared by all instances.',
  management:
    'Rate limited per key, shared by /api/v1/uploads*, /api/v1/me and /api/v1/upload-token (`rate_limit`), a sliding ' +
    'minute shared by all instances.',
};

type SwaggerResponses = Record<string, ResponseObject & { type?: unknown }>;

/** Adds the rate-limit headers to a handler's documented responses, and the 429 and 503 answers. */
function documentLimits(handler: object, group: RateLimitGroup): void {
  const responses = {
    ...((Reflect.getMetadata(DECORATORS.API_RESPONSE, handler) ?? {}) as SwaggerResponses),
  };
  for (const [status, response] of Object.entries(responses)) {
    if (/^2\d\d$/.test(status)) {
      responses[status] = { ...response, headers: { ...response.headers, ...LIMIT_HEADERS } };
    }
  }
  const codes = group === 'uploads' ? '`rate_limit` or `rate_limit_day`' : '`rate_limit`';
  responses['429'] = {
    description: `Error envelope with code ${codes}. ${GROUP_DOCS[group]}`,
    type: ErrorResponse,
    headers: REFUSED_HEADERS,
  };
  // Keep whatever else the route documents under 503 (e.g. the moderation model for uploads).
  const other = responses['503']?.description;
  responses['503'] = {
    description: `${other ? `${other} ` : 'Error envelope with code `unavailable`. '}Also when the rate limiter cannot reach Redis (unless RATE_LIMIT_FAIL_OPEN).`,
    type: ErrorResponse,
  };
  Reflect.defineMetadata(DECORATORS.API_RESPONSE, responses, handler);
}

/**
 * Puts a route (or every route of a controller) under a rate-limit group and documents it. Place it above the
 * Swagger response decorators: decorators apply bottom-up, and this one extends what they declared.
 */
export function RateLimit(group: RateLimitGroup): MethodDecorator & ClassDecorator {
  return (target: object, key?: string | symbol, descriptor?: PropertyDescriptor): void => {
    if (descriptor) {
      SetMetadata(RATE_LIMIT_GROUP, group)(target, key!, descriptor);
      documentLimits(descriptor.value as object, group);
      return;
    }
    SetMetadata(RATE_LIMIT_GROUP, group)(target as never);
    const proto = (target as { prototype: Record<string, unknown> }).prototype;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (
        name !== 'constructor' &&
        typeof handler === 'function' &&
        Reflect.hasMetadata(PATH_METADATA, handler)
      ) {
        documentLimits(handler, group);
      }
    }
  };
}
