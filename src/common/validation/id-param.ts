import { ApiProperty } from '@nestjs/swagger';
import { IsUUID } from 'class-validator';

/** Marks a validation failure that answers 404 `not_found` instead of 400 (see createValidationPipe). */
export const NOT_FOUND_IF_INVALID = { answer: 'not_found' } as const;

/**
 * The `:id` path parameter of every route: `@Param() { id }: IdParam`. An id that is not a UUID names no resource,
 * so it answers 404 `not_found` (API.md: "no such resource"), exactly like a well-formed unknown id.
 */
export class IdParam {
  @ApiProperty({ format: 'uuid', description: 'The resource id (a UUID).' })
  @IsUUID('all', { context: NOT_FOUND_IF_INVALID })
  id!: string;
}
