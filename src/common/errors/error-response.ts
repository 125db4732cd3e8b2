import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiProperty, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { ERROR_CODES, ERROR_STATUS, type ErrorCode } from './error-status';

/** The error envelope, for the OpenAPI document. */
export class ErrorResponse {
  @ApiProperty({ type: Boolean, example: false, description: 'Always false on an error.' })
  ok!: false;

  @ApiProperty({ enum: ERROR_CODES, example: 'bad_request' })
  code!: ErrorCode;

  @ApiProperty({
    description: 'A human sentence; never a stack trace, SQL or path.',
    example: 'The request is malformed.',
  })
  error!: string;

  @ApiProperty({
    required: false,
    type: 'array',
    items: { type: 'object' },
    description: 'Validation details.',
  })
  details?: unknown[];
}

/** Documents the envelope for each listed code, grouped by status. */
export function ApiErrorResponses(...codes: ErrorCode[]): MethodDecorator & ClassDecorator {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set<ErrorCode>([...codes, 'internal'])) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return applyDecorators(
    ApiExtraModels(ErrorResponse),
    ...[...byStatus.entries()].map(([status, list]) =>
      ApiResponse({
        status,
        // JSON whatever the route's own answer is (@ApiProduces: the curl snippet is a shell script).
        content: { 'application/json': { schema: { $ref: getSchemaPath(ErrorResponse) } } },
        description: `Error envelope with code ${list.map((c) => '`' + c + '`').join(' or ')}.`,
      }),
    ),
  );
}
