import { type Schemas } from '../api/client';
import { embedSnippets, variantUrl } from '../lib/embed';
import { formatBytes, formatDate, formatExpiry } from '../lib/format';
import { CopyButton } from './copy-button';

export type UploadItem = Schemas['UploadListItem'];

const TYPE_NAMES: Record<string, string> = {
  'image/png': 'PNG',
  'image/jpeg': 'JPEG',
  'image/gif': 'GIF',
  'image/webp': 'WebP',
  'image/avif': 'AVIF',
};

/** The id of an upload's card (focused after the upload before it is deleted). */
export function cardId(filename: string): string {
  return `card-${filename}`;
}

/**
 * One upload of the gallery: its 320-px variant (640 px on sharp screens) — never the original — and what it is,
 * with the direct link, embed snippets, the original and delete.
 */
export function UploadCard({
  upload,
  onDelete,
}: {
  upload: UploadItem;
  onDelete: (upload: UploadItem) => void;
}) {
  const titleId = `upload-${upload.filename}`;
  return (
    <li id={cardId(upload.filename)} className="upload-card" aria-labelledby={titleId} tabIndex={-1}>
      <div className="upload-thumb">
        <img
          src={upload.thumbnail_url}
          srcSet={`${upload.thumbnail_url} 1x, ${variantUrl(upload.thumbnail_url, 640)} 2x`}
          alt={`Thumbnail of ${upload.filename}`}
          loading="lazy"
          decoding="async"
          width={upload.width}
          height={upload.height}
        />
      </div>
      <div className="upload-info">
        <p id={titleId} className="upload-name">
          {upload.filename}
        </p>
        <dl className="upload-meta">
          <div>
            <dt>Size</dt>
            <dd>{formatBytes(upload.size)}</dd>
          </div>
          <div>
            <dt>Type</dt>
            <dd>{TYPE_NAMES[upload.mime] ?? upload.mime}</dd>
          </div>
          {upload.expires_at ? (
            <div>
              <dt>Expires</dt>
              <dd>
                <time dateTime={upload.expires_at} title={formatDate(upload.expires_at)}>
                  {formatExpiry(upload.expires_at)}
                </time>{' '}
                ({formatDate(upload.expires_at)})
              </dd>
            </div>
          ) : null}
          <div>
            <dt>Dimensions</dt>
            <dd>
              {upload.width} × {upload.height}
            </dd>
          </div>
          <div>
            <dt>Uploaded</dt>
            <dd>
              <time dateTime={upload.created_at}>{formatDate(upload.created_at)}</time>
            </dd>
          </div>
          <div>
            <dt>Tags</dt>
            <dd>{upload.tags.length > 0 ? upload.tags.join(', ') : 'none'}</dd>
          </div>
        </dl>
        <div className="upload-actions">
          <CopyButton
            text={upload.url}
            label={`Copy link of ${upload.filename}`}
            className="button button-small"
          >
            Copy link
          </CopyButton>
          <a
            className="button button-small"
            href={upload.url}
            target="_blank"
            rel="noopener noreferrer"
            aria-label={`Open original of ${upload.filename}`}
          >
            Open original
          </a>
          <button
            type="button"
            className="button button-small"
            aria-label={`Delete ${upload.filename}`}
            onClick={() => onDelete(upload)}
          >
            Delete
          </button>
        </div>
        <details className="upload-embed">
          <summary>Embed codes</summary>
          {embedSnippets(upload.url, upload.filename).map((snippet) => (
            <div key={snippet.label} className="snippet">
              <span className="snippet-label">{snippet.label}</span>
              <code className="code">{snippet.text}</code>
              <CopyButton
                text={snippet.text}
                label={`Copy ${snippet.label} for ${upload.filename}`}
                className="button button-small"
              />
            </div>
          ))}
        </details>
      </div>
    </li>
  );
}
