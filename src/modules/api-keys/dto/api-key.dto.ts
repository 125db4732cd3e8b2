import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsInt,
  Max,
  Min,
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsOptional,
  IsString,
  Length,
  Matches,
} from 'class-validator';
import { Omittable } from '../../../common/validation/omittable';
import { type Scope, SCOPES } from '../../../common/auth/scopes';

const SCOPES_DOC =
  '`upload` (POST /api/v1/upload and /api/v1/upload-token), `read` (listing, lookup, by-hash, /me), `delete` ' +
  '(DELETE /api/v1/uploads/:filename). Changing tags needs `upload`; admin endpoints need all three. Outside its ' +
  'scopes a key gets 403 `forbidden` naming the missing scope.';

const SCOPES_MESSAGE = `scopes must be a non-empty list of distinct values from ${SCOPES.join(', ')}`;

export class CreateKeyDto {
  @ApiProperty({ example: 'ci', minLength: 1, maxLength: 64, description: 'A name to recognise the key by.' })
  @IsString({ message: 'label must be a string' })
  @Length(1, 64, { message: 'label must be 1 to 64 characters' })
  // `*`: an empty label is the length rule's to name, not this one's.
  @Matches(/^[^\p{Cc}]*$/u, { message: 'label must not contain control characters' })
  label!: string;

  @ApiPropertyOptional({
    type: [String],
    enum: SCOPES,
    minItems: 1,
    uniqueItems: true,
    example: ['upload'],
    description: `What the key may do; omitted = all three. ${SCOPES_DOC}`,
  })
  @Omittable()
  @IsArray({ message: SCOPES_MESSAGE })
  @ArrayMinSize(1, { message: SCOPES_MESSAGE })
  @ArrayMaxSize(SCOPES.length, { message: SCOPES_MESSAGE })
  @ArrayUnique({ message: SCOPES_MESSAGE })
  @IsIn(SCOPES, { each: true, message: SCOPES_MESSAGE })
  scopes?: Scope[];

  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    minimum: 60,
    maximum: 31_536_000,
    example: 86400,
    description:
      'Seconds an upload made with this key (or a ut_ token it mints) lives unless the upload sends `expires_in` or ' +
      '`expires_at`; omitted or null = uploads never expire.',
  })
  // null says what the key objects show for "never" (default_expires_in: null), so it is taken as "never" too.
  @IsOptional()
  @IsInt()
  @Min(60)
  @Max(31_536_000)
  default_expires_in?: number;
}

export class KeyResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'fxf_8350' }) prefix!: string;
  @ApiProperty({ example: 'ci' }) label!: string;
  @ApiProperty({
    type: [String],
    enum: SCOPES,
    example: ['upload', 'read', 'delete'],
    description: SCOPES_DOC,
  })
  scopes!: Scope[];
  @ApiProperty({
    type: 'integer',
    nullable: true,
    example: null,
    description: 'Default upload lifetime in seconds.',
  })
  default_expires_in!: number | null;
  @ApiProperty({ type: 'integer', example: 402 }) request_count!: number;
  @ApiProperty({ format: 'date-time', example: '2026-04-01T00:00:00.000Z' }) created_at!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time', example: '2026-04-02T10:00:00.000Z' })
  last_used_at!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time', example: null }) revoked_at!:
    | string
    | null;
}

export class CreateKeyResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ example: 'fxf_8350…', description: 'Shown once; only its SHA-256 is kept.' }) token!: string;
  @ApiProperty({ type: KeyResponse }) key!: KeyResponse;
}

export class ListKeysResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: [KeyResponse] }) keys!: KeyResponse[];
}

export class RevokeKeyResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ format: 'uuid' }) revoked!: string;
}
