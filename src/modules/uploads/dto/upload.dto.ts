import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { PageQuery } from '../../../common/validation/page-query';
import { MULTIPART_FIELD_BYTES } from '../multipart/multipart-reader';
import {
  asciiLowerCase,
  MAX_TAGS,
  SENT_TAG_PATTERN,
  TAG_MAX_LENGTH,
  TAG_PATTERN,
  TAGS_PART_PATTERN,
  TRIMMED_TAG_PATTERN,
} from '../tags';

export class UploadResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ example: 'FIXITFY-aB3xZ7nQrL9p.png' }) filename!: string;
  @ApiProperty({ example: 'http://localhost:3000/images/FIXITFY-aB3xZ7nQrL9p.png' }) url!: string;
  @ApiProperty({
    example: 'http://localhost:3000/images/FIXITFY-aB3xZ7nQrL9p.png?w=320&format=auto',
    description:
      "A 320 px wide variant (never enlarged) in the best format the client accepts (AVIF, WebP, else the original's); see the direct link's w/h/fit/format parameters.",
  })
  thumbnail_url!: string;
  @ApiProperty({
    example: 'http://localhost:3000/api/delete/3f9a8c1e…',
    description: 'One-shot delete link; a secret.',
  })
  delete_url!: string;
  @ApiProperty({
    type: 'integer',
    example: 184237,
    description: 'Bytes of the stored file as served from url.',
  })
  size!: number;
  @ApiProperty({ enum: ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif'] }) mime!: string;
  @ApiProperty({ type: 'integer', example: 1920 }) width!: number;
  @ApiProperty({ type: 'integer', example: 1080 }) height!: number;
  @ApiProperty({
    example: '9b998a17f968480982526464f04575fc…',
    description: 'SHA-256 of the bytes as uploaded.',
  })
  hash_sha256!: string;
  @ApiPropertyOptional({
    example: true,
    description: 'Present on a dedupe hit: the existing upload is returned.',
  })
  deduplicated?: true;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    example: null,
    description: 'When the upload expires (404 everywhere from then on); null when it never does.',
  })
  expires_at!: string | null;
}

export class UploadFormDto {
  @ApiProperty({
    type: 'string',
    format: 'binary',
    description: 'The image bytes (PNG, JPEG, GIF, WebP, AVIF; ≤ 20 MB).',
  })
  file!: unknown;
  // No `example`s on the optional parts: Swagger UI's "Try it out" sends them all, and both expiries at once are a 400.
  // A part sent empty (a blank field of Swagger UI or an HTML form) counts as not sent. Without a default, Swagger UI
  // fills a field with a sample: a random match of its pattern (tags nobody chose).
  @ApiPropertyOptional({
    default: '',
    pattern: TAGS_PART_PATTERN,
    maxLength: MULTIPART_FIELD_BYTES,
    description:
      'Comma-separated, ≤ 10 tags of [a-z0-9_-]{1,32} (any case: stored lower-cased; spaces around a tag are ' +
      'dropped), e.g. logo,red. Several tags parts add up (≤ 10 in all).',
  })
  tags?: string;
  @ApiPropertyOptional({
    default: '',
    description:
      'Seconds until the upload expires, 60 to 31536000 (1 year), e.g. 86400. Not with expires_at. Neither: the ' +
      'key’s default_expires_in, else never.',
  })
  expires_in?: string;
  @ApiPropertyOptional({
    default: '',
    description:
      'When the upload expires: ISO-8601 with a zone, in the future, at most a year ahead (e.g. ' +
      '2030-06-01T12:00:00.000Z).',
  })
  expires_at?: string;
}

export class UploadListItem {
  @ApiProperty({ example: 'FIXITFY-aB3xZ7nQrL9p.png' }) filename!: string;
  @ApiProperty() url!: string;
  @ApiProperty({
    example: 'http://localhost:3000/images/FIXITFY-aB3xZ7nQrL9p.png?w=320&format=auto',
    description:
      "A 320 px wide variant (never enlarged) in the best format the client accepts (AVIF, WebP, else the original's); see the direct link's w/h/fit/format parameters.",
  })
  thumbnail_url!: string;
  @ApiProperty({ example: 'image/png' }) mime!: string;
  @ApiProperty({ type: 'integer', example: 184237 }) size!: number;
  @ApiProperty({ type: 'integer', example: 1920 }) width!: number;
  @ApiProperty({ type: 'integer', example: 1080 }) height!: number;
  @ApiProperty({ type: [String], example: ['redm', 'logo'] }) tags!: string[];
  @ApiProperty({ format: 'date-time', example: '2026-05-01T11:59:00.000Z' }) created_at!: string;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    example: null,
    description: 'When the upload expires (404 everywhere from then on); null when it never does.',
  })
  expires_at!: string | null;
}

export class UploadDetail extends UploadListItem {
  @ApiProperty({ example: '9b998a17…' }) hash_sha256!: string;
}

export class ListUploadsResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: 'integer', example: 50 }) count!: number;
  @ApiProperty({
    type: String,
    nullable: true,
    example: '2026-05-01T12:00:00.000Z',
    description:
      'Pass back as `before` for the next page; null on the last page. An ISO timestamp, followed by `~<id>` when the page ends among uploads sharing a timestamp.',
  })
  next_before!: string | null;
  @ApiProperty({ type: [UploadListItem] }) uploads!: UploadListItem[];
}

export class UploadDetailResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: UploadDetail }) upload!: UploadDetail;
}

export class DeletedResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ example: 'FIXITFY-aB3xZ7nQrL9p.png' }) deleted!: string;
}

export class ListUploadsQuery extends PageQuery {
  @ApiPropertyOptional({
    pattern: SENT_TAG_PATTERN,
    minLength: 1,
    maxLength: TAG_MAX_LENGTH,
    description: 'Only uploads with this tag (e.g. logo; any case).',
  })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? asciiLowerCase(value) : value))
  @IsString()
  @Matches(TAG_PATTERN, { message: 'tag must be 1–32 characters of a-z, 0-9, "_" or "-"' })
  tag?: string;
}

export class HashParam {
  @ApiProperty({
    example: '9b998a17f968480982526464f04575fc9b998a17f968480982526464f04575fc',
    pattern: '^[0-9a-fA-F]{64}$',
  })
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.toLowerCase() : value))
  @IsString()
  @Matches(/^[0-9a-f]{64}$/, { message: 'sha256 must be 64 hexadecimal characters' })
  sha256!: string;
}

export class UpdateTagsDto {
  @ApiProperty({
    type: 'array',
    items: { type: 'string', minLength: 1, maxLength: TAG_MAX_LENGTH, pattern: TRIMMED_TAG_PATTERN },
    maxItems: MAX_TAGS,
    example: ['logo', 'redm'],
    description: 'The new tags (any case: stored trimmed and lower-cased, each once); [] removes them all.',
  })
  @IsArray()
  @ArrayMaxSize(10)
  @IsString({ each: true })
  @MaxLength(32, { each: true })
  tags!: string[];
}

export class AccountStats {
  @ApiProperty({ example: 'you@example.com' }) email!: string;
  @ApiProperty({ enum: ['user', 'admin'] }) role!: string;
  @ApiProperty({ type: 'integer', example: 128 }) uploads_active!: number;
  @ApiProperty({ type: 'integer', example: 5242880 }) storage_used_bytes!: number;
  @ApiProperty({
    type: 'integer',
    nullable: true,
    example: 1073741824,
    description: 'Storage quota in bytes (stored sizes of live uploads); null = unlimited.',
  })
  quota_bytes!: number | null;
  @ApiProperty({
    type: 'integer',
    nullable: true,
    example: 1000,
    description: 'Live uploads allowed; null = unlimited.',
  })
  quota_files!: number | null;
}

export class MeKey {
  @ApiProperty({ example: 'fxf_8350' }) prefix!: string;
  @ApiProperty({ example: 'ci' }) label!: string;
  @ApiProperty({ type: [String], enum: ['upload', 'read', 'delete'], example: ['upload', 'read', 'delete'] })
  scopes!: string[];
  @ApiProperty({ type: 'integer', example: 402 }) request_count!: number;
  @ApiProperty({ format: 'date-time', example: '2026-04-01T00:00:00.000Z' }) created_at!: string;
}

export class MeResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: AccountStats }) account!: AccountStats;
  @ApiProperty({
    type: MeKey,
    nullable: true,
    description: 'The calling key; null when called with a session.',
  })
  key!: MeKey | null;
}
