import { DriverException, UniqueConstraintViolationException } from '@mikro-orm/core';
import { NotFoundException, PayloadTooLargeException } from '@nestjs/common';
import { AppError } from './app-error';
import { toAppError } from './all-exceptions.filter';
import { ERROR_STATUS } from './error-status';

describe('toAppError', () => {
  it('should pass an AppError through', () => {
    const err = new AppError('nsfw_rejected');
    expect(toAppError(err)).toEqual({ error: err, unexpected: false });
  });

  it('should map an unknown route to not_found and a Nest 413 to too_large', () => {
    expect(toAppError(new NotFoundException('Cannot GET /x')).error).toMatchObject({
      code: 'not_found',
      message: 'No such resource.',
    });
    expect(toAppError(new PayloadTooLargeException()).error.code).toBe('too_large');
  });

  it('should map body-parser errors by type', () => {
    expect(toAppError({ type: 'entity.too.large', status: 413 }).error.code).toBe('too_large');
    expect(toAppError({ type: 'encoding.unsupported', status: 415 }).error.code).toBe('bad_request');
  });

  it('should map ORM errors to conflict and db_failed without their message', () => {
    const unique = new UniqueConstraintViolationException(
      new Error('duplicate key value violates "users_email_unique"'),
    );
    expect(toAppError(unique).error.code).toBe('conflict');
    const driver = toAppError(new DriverException(new Error('connection refused at 10.0.0.5')));
    expect(driver).toMatchObject({ unexpected: true });
    expect(driver.error.code).toBe('db_failed');
    expect(driver.error.message).not.toContain('10.0.0.5');
  });

  it('should map raw connection failures outside the ORM types to db_failed, and Redis failures to unavailable', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const knexTimeout = Object.assign(new Error('Knex: Timeout acquiring a connection.'), {
      name: 'KnexTimeoutError',
    });
    for (const err of [
      refused,
      new Error('Connection terminated unexpectedly'),
      // pg's connectionTimeoutMillis: a handshake that got no answer.
      new Error('timeout expired'),
      knexTimeout,
      new Error('wrapped', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) }),
      Object.assign(new Error('the database system is shutting down'), { code: '57P03' }),
    ]) {
      const mapped = toAppError(err);
      expect(mapped).toMatchObject({ unexpected: true });
      expect(mapped.error.code).toBe('db_failed');
      expect(mapped.error.message).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|Knex/);
    }
    const redis = Object.assign(new Error('Reached the max retries per request limit (which is 1).'), {
      name: 'MaxRetriesPerRequestError',
    });
    expect(toAppError(redis).error.code).toBe('unavailable');
    expect(toAppError(new Error('Connection is closed.')).error.code).toBe('unavailable');
  });

  it('should answer anything else as internal without its message', () => {
    const { error, unexpected } = toAppError(new TypeError('secret stack detail'));
    expect(unexpected).toBe(true);
    expect(error.code).toBe('internal');
    expect(error.message).not.toContain('secret');
  });

  it('should give every code the status API.md lists', () => {
    expect(ERROR_STATUS).toMatchObject({
      unauthorized: 401,
      banned: 403,
      forbidden: 403,
      missing_file: 400,
      empty_file: 400,
      bad_request: 400,
      not_found: 404,
      too_large: 413,
      unsupported_type: 415,
      nsfw_rejected: 415,
      processing_failed: 415,
      rate_limit: 429,
      rate_limit_day: 429,
      conflict: 409,
      header_too_large: 431,
      range_not_satisfiable: 416,
      storage_failed: 500,
      db_failed: 500,
      unavailable: 503,
      internal: 500,
    });
  });
});
