import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsInt,
  IsString,
  Matches,
  Max,
  Min,
} from 'class-validator';
import { Omittable } from '../../../common/validation/omittable';
import { UPLOAD_TOKEN_TTL, UPLOAD_TOKEN_TYPES, type UploadTokenType } from '../upload-token';
import { asciiLowerCase } from '../../uploads/tags';

/** max_uploads and max_bytes are bounded so a token stays small and a counter never overflows. */
export const MAX_TOKEN_UPLOADS = 1_000_000;
export const MAX_TOKEN_BYTES = 1024 * 1024 * 1024;

export class CreateUploadTokenDto {
  @ApiProperty({
    required: false,
    type: 'integer',
    minimum: UPLOAD_TOKEN_TTL.min,
    maximum: UPLOAD_TOKEN_TTL.max,
    default: UPLOAD_TOKEN_TTL.default,
    example: 3600,
    description: 'Lifetime in seconds, an integer from 60 to 604800 (7 days). Omitted: 3600.',
  })
  // Omitted means the default; anything else present (null, a string, a fraction) must be a valid integer.
  @Omittable()
  @IsInt()
  @Min(UPLOAD_TOKEN_TTL.min)
  @Max(UPLOAD_TOKEN_TTL.max)
  ttl_seconds?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_TOKEN_BYTES,
    example: 5242880,
    description:
      'The largest file (bytes as uploaded) the token accepts; the server-wide limit (20 MB) still applies. Over it → 413 `too_large`.',
  })
  @Omittable()
  @IsInt()
  @Min(1)
  @Max(MAX_TOKEN_BYTES)
  max_bytes?: number;

  @ApiPropertyOptional({
    type: [String],
    enum: UPLOAD_TOKEN_TYPES,
    example: ['png', 'jpeg'],
    description:
      'The image types the token accepts (judged by content). Another type → 415 `unsupported_type`.',
  })
  @Omittable()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayUnique()
  @IsIn(UPLOAD_TOKEN_TYPES, { each: true })
  allowed_types?: UploadTokenType[];

  @ApiPropertyOptional({
    type: 'array',
    // As the Matches below, before which the tags are lower-cased (not trimmed).
    items: { type: 'string', minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9_-]{1,32}$' },
    minItems: 1,
    maxItems: 10,
    example: ['ci', 'build-42'],
    description:
      "Tags added to every upload made with the token, besides the upload's own (together at most 10, else 400).",
  })
  @Omittable()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(10)
  @IsString({ each: true })
  @Transform(({ value }: { value: unknown }) =>
    Array.isArray(value)
      ? (value as unknown[]).map((v) => (typeof v === 'string' ? asciiLowerCase(v) : v))
      : value,
  )
  @Matches(/^[a-z0-9_-]{1,32}$/, {
    each: true,
    message: 'each tag must be 1–32 characters of a-z, 0-9, "_" or "-"',
  })
  tags?: string[];

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_TOKEN_UPLOADS,
    example: 1,
    description:
      'How many successful uploads the token allows (1 = single-use), counted atomically across instances; then ' +
      '403 `forbidden`. A failed upload gives its use back; a dedupe hit uses one.',
  })
  @Omittable()
  @IsInt()
  @Min(1)
  @Max(MAX_TOKEN_UPLOADS)
  max_uploads?: number;
}

export class UploadTokenResponse {
  @ApiProperty({ example: true }) ok!: true;

  @ApiProperty({
    example: 'ut_eyJ1IjoiNGY…In0.k7Qd…',
    description:
      '`ut_` + base64url(JSON payload beginning `{"u":"`) + `.` + base64url(HMAC-SHA256). Use it as a bearer on ' +
      "POST /api/v1/upload only. It dies with its minting key and with its owner's ban. Its constraints are in " +
      'the signed payload.',
  })
  token!: string;

  @ApiProperty({ format: 'date-time', example: '2026-06-01T13:00:00.000Z' }) expires_at!: string;
}
