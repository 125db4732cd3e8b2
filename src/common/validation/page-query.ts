import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';

const LIMIT_MESSAGE = 'limit must be a whole number from 1 to 100';

/** `limit` and `before` of every keyset-paged list (uploads, deliveries, admin lists, the audit log). */
export class PageQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, default: 50 })
  @IsOptional()
  // Digits only: Number() would also take "0x10", "1e1", " 5" or "+5". Anything else stays as sent and fails IsInt.
  @Transform(({ value }: { value: unknown }) =>
    typeof value === 'string' && /^\d{1,3}$/.test(value) ? Number(value) : value,
  )
  @IsInt({ message: LIMIT_MESSAGE })
  @Min(1, { message: LIMIT_MESSAGE })
  @Max(100, { message: LIMIT_MESSAGE })
  limit?: number;

  // No `example` on an optional filter: Swagger UI's "Try it out" sends it, and a page before a past date is empty.
  @ApiPropertyOptional({
    maxLength: 80,
    description: 'An ISO timestamp (e.g. 2026-05-01T12:00:00.000Z), or the next_before of the previous page.',
  })
  @IsOptional()
  @IsString()
  @MaxLength(80)
  before?: string;
}
