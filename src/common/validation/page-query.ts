import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';

/** `limit` and `before` of every keyset-paged list (uploads, deliveries, admin lists, the audit log). */
export class PageQuery {
  @ApiPropertyOptional({ minimum: 1, maximum: 100, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;

  @ApiPropertyOptional({
    example: '2026-05-01T12:00:00.000Z',
    description: 'An ISO timestamp, or the next_before of the previous page.',
  })
  @IsOptional()
  @IsString()
  @MaxLength(80)
  before?: string;
}
