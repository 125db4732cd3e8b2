import { ApiProperty } from '@nestjs/swagger';
import { IsInt, Max, Min, ValidateIf } from 'class-validator';
import { UPLOAD_TOKEN_TTL } from '../upload-token';

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
  @ValidateIf((_o, value) => value !== undefined)
  @IsInt()
  @Min(UPLOAD_TOKEN_TTL.min)
  @Max(UPLOAD_TOKEN_TTL.max)
  ttl_seconds?: number;
}

export class UploadTokenResponse {
  @ApiProperty({ example: true }) ok!: true;

  @ApiProperty({
    example: 'ut_eyJ1IjoiNGY…In0.k7Qd…',
    description:
      '`ut_` + base64url(JSON payload beginning `{"u":"`) + `.` + base64url(HMAC-SHA256). Use it as a bearer on ' +
      "POST /api/v1/upload only. It dies with its minting key and with its owner's ban.",
  })
  token!: string;

  @ApiProperty({ example: '2026-06-01T13:00:00.000Z' }) expires_at!: string;
}
