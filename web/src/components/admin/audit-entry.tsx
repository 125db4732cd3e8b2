import { Link } from 'wouter';
import type { Schemas } from '../../api/client';
import { formatMetadata } from './format';
import { formatDate } from '../../lib/format';

export type AuditEntry = Schemas['AuditEntryResponse'];

/** A link to the audit log filtered by one more field, keeping the others. */
export type FilterHref = (field: 'action' | 'actor' | 'target', value: string) => string;

/** One audit entry; its metadata as indented text in a <pre> (server data is never rendered as HTML). */
export function AuditEntryView({ entry, filterHref }: { entry: AuditEntry; filterHref: FilterHref }) {
  const metadata = formatMetadata(entry.metadata);
  const actor = entry.actor;
  return (
    <li className="audit-entry">
      <div className="audit-head">
        <Link href={filterHref('action', entry.action)} aria-label={`Only ${entry.action} entries`}>
          <code>{entry.action}</code>
        </Link>
        <time dateTime={entry.created_at}>{formatDate(entry.created_at)}</time>
      </div>
      <dl className="audit-fields">
        <div>
          <dt>Actor</dt>
          <dd>
            {actor ? (
              <>
                <Link href={filterHref('actor', actor.email ?? actor.id)}>{actor.email ?? actor.id}</Link>
                {actor.key_prefix ? <> with key {actor.key_prefix}…</> : null}
              </>
            ) : (
              'nobody signed in'
            )}
          </dd>
        </div>
        <div>
          <dt>Target</dt>
          <dd className="break">
            {entry.target_id ? (
              <>
                {entry.target_type ? `${entry.target_type} ` : ''}
                <Link href={filterHref('target', entry.target_id)}>{entry.target_id}</Link>
              </>
            ) : (
              '—'
            )}
          </dd>
        </div>
        <div>
          <dt>IP</dt>
          <dd>{entry.ip ?? '—'}</dd>
        </div>
        <div>
          <dt>User agent</dt>
          <dd className="break">{entry.user_agent ?? '—'}</dd>
        </div>
      </dl>
      {metadata ? <pre className="code audit-metadata">{metadata}</pre> : null}
    </li>
  );
}
