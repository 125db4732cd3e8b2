import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Length, Max, MaxLength, Min, ValidateIf } from 'class-validator';
import { PageQuery } from '../../../common/validation/page-query';
import { UploadDetail } from '../../uploads/dto/upload.dto';

export class AuditQueryDto extends PageQuery {
  @ApiPropertyOptional({ maxLength: 64, description: 'Only this action, e.g. api_key.revoked.' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  action?: string;

  @ApiPropertyOptional({ description: "The actor's user id or email." })
  @IsOptional()
  @IsString()
  @MaxLength(254)
  actor?: string;

  @ApiPropertyOptional({ description: 'A target id (user id, key id, filename, webhook id, sha256).' })
  @IsOptional()
  @IsString()
  @MaxLength(254)
  target?: string;
}

export class UsersQueryDto extends PageQuery {
  @ApiPropertyOptional({ description: 'Part of an email address, e.g. example.com.' })
  @IsOptional()
  @IsString()
  @MaxLength(254)
  query?: string;
}

export class AdminUploadsQueryDto extends PageQuery {
  @ApiPropertyOptional({
    description:
      'Only this user’s uploads: their id or email (as the audit log’s `actor`); no such user, none.',
  })
  @IsOptional()
  @IsString()
  @MaxLength(254)
  user?: string;
}

export class BanDto {
  @ApiProperty({ example: 'Spam uploads', minLength: 1, maxLength: 500 })
  @IsString()
  @Length(1, 500)
  reason!: string;
}

export class AuditActor {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ nullable: true, type: String }) email!: string | null;
  @ApiProperty({
    nullable: true,
    type: String,
    example: 'fxf_8350',
    description: 'Set when an API key acted.',
  })
  key_prefix!: string | null;
}

export class AuditEntryResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'api_key.revoked' }) action!: string;
  @ApiProperty({ type: AuditActor, nullable: true }) actor!: AuditActor | null;
  @ApiProperty({ nullable: true, type: String, example: 'api_key' }) target_type!: string | null;
  @ApiProperty({ nullable: true, type: String }) target_id!: string | null;
  @ApiProperty({ nullable: true, type: String }) ip!: string | null;
  @ApiProperty({ nullable: true, type: String }) user_agent!: string | null;
  @ApiProperty({ type: 'object', additionalProperties: true }) metadata!: Record<string, unknown>;
  @ApiProperty({ format: 'date-time', example: '2026-05-01T11:59:00.000Z' }) created_at!: string;
}

export class AuditListResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: 'integer' }) count!: number;
  @ApiProperty({ nullable: true, type: String }) next_before!: string | null;
  @ApiProperty({ type: [AuditEntryResponse] }) entries!: AuditEntryResponse[];
}

export class AdminUser {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() email!: string;
  @ApiProperty({ enum: ['user', 'admin'] }) role!: string;
  @ApiProperty() banned!: boolean;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) banned_at!: string | null;
  @ApiProperty({ nullable: true, type: String }) ban_reason!: string | null;
  @ApiProperty({ type: 'integer' }) uploads_active!: number;
  @ApiProperty({ type: 'integer' }) storage_used_bytes!: number;
  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'Storage quota in force (bytes); null = unlimited.',
  })
  quota_bytes!: number | null;
  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'Live-upload quota in force; null = unlimited.',
  })
  quota_files!: number | null;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
}

export class UpdateUserQuotaDto {
  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    example: 1073741824,
    description:
      "The user's storage quota in bytes; null = back to STORAGE_QUOTA_BYTES (unset there: unlimited).",
  })
  @ValidateIf((_o, v) => v !== undefined && v !== null)
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  quota_bytes?: number | null;

  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    minimum: 0,
    maximum: 2_147_483_647,
    example: 1000,
    description: "The user's live-upload quota; null = back to STORAGE_QUOTA_FILES (unset there: unlimited).",
  })
  @ValidateIf((_o, v) => v !== undefined && v !== null)
  @IsInt()
  @Min(0)
  @Max(2_147_483_647)
  quota_files?: number | null;
}

export class AdminUsersResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: 'integer' }) count!: number;
  @ApiProperty({ nullable: true, type: String }) next_before!: string | null;
  @ApiProperty({ type: [AdminUser] }) users!: AdminUser[];
}

export class AdminUserResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: AdminUser }) user!: AdminUser;
}

export class UploadOwner {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() email!: string;
}

export class AdminUpload extends UploadDetail {
  @ApiProperty({ type: UploadOwner }) owner!: UploadOwner;
}

export class AdminUploadsResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: 'integer' }) count!: number;
  @ApiProperty({ nullable: true, type: String }) next_before!: string | null;
  @ApiProperty({ type: [AdminUpload] }) uploads!: AdminUpload[];
}
