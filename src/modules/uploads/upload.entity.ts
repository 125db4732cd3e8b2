import { Entity, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import { User } from '../auth/user.entity';

export interface UploadScores {
  drawing: number;
  hentai: number;
  neutral: number;
  porn: number;
  sexy: number;
}

@Entity({ tableName: 'uploads' })
// Dedupe: one live upload per (owner, sha256); the partial unique index also settles concurrent duplicates.
@Index({
  name: 'uploads_owner_sha256_live_uniq',
  properties: ['owner', 'sha256'],
  expression:
    'create unique index "uploads_owner_sha256_live_uniq" on "uploads" ("owner_id", "sha256") where "deleted_at" is null',
})
// The keyset listing: newest first per owner, id as the tie-breaker.
@Index({
  name: 'uploads_owner_listing_idx',
  properties: ['owner', 'createdAt', 'id'],
  expression:
    'create index "uploads_owner_listing_idx" on "uploads" ("owner_id", "created_at" desc, "id" desc) where "deleted_at" is null',
})
@Index({
  name: 'uploads_tags_gin_idx',
  properties: ['tags'],
  expression:
    'create index "uploads_tags_gin_idx" on "uploads" using gin ("tags") where "deleted_at" is null',
})
export class Upload {
  [OptionalProps]?: 'id' | 'createdAt' | 'deletedAt' | 'tags' | 'apiKeyId' | 'scores' | 'pages' | 'expiresAt';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  /** The key that uploaded it (null for a session upload); kept as a plain id so key revocation never touches uploads. */
  @Property({ type: 'uuid', nullable: true })
  apiKeyId?: string | null = null;

  @Property({ type: 'text', unique: true })
  filename!: string;

  @Property({ type: 'text' })
  mime!: string;

  /** Bytes of the stored (stripped) file. */
  @Property({ type: 'integer' })
  size!: number;

  @Property({ type: 'integer' })
  width!: number;

  @Property({ type: 'integer' })
  height!: number;

  /**
   * Frames of the stored image as decoded at upload time (1 for a still); null for uploads recorded before this was
   * kept (unknown: variants then treat a GIF or WebP as possibly animated).
   */
  @Property({ type: 'integer', nullable: true })
  pages?: number | null = null;

  /** SHA-256 of the bytes as uploaded: the dedupe key (API.md). */
  @Property({ type: 'text' })
  sha256!: string;

  /** SHA-256 of the stored bytes: the strong ETag of the direct link. */
  @Property({ type: 'text' })
  storedSha256!: string;

  @Property({ type: 'text[]', default: '{}' })
  tags: string[] = [];

  /** sha256 of the delete-link token; the token itself is never stored. */
  @Property({ type: 'text', unique: true })
  deleteTokenHash!: string;

  @Property({ type: 'jsonb', nullable: true })
  scores?: UploadScores | null = null;

  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  deletedAt?: Date | null = null;

  /** Gone from this instant (404 everywhere), soft-deleted by the expiry sweep soon after; null = never. */
  @Property({ type: 'timestamptz', length: 3, nullable: true })
  expiresAt?: Date | null = null;
}
