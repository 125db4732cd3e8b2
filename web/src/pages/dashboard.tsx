import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useEffect, useState } from 'react';
import { useLocation, useSearch } from 'wouter';
import { api, call } from '../api/client';
import { Gallery } from '../components/gallery';
import { useRefocus } from '../components/refocus';
import { UploadPanel } from '../components/upload-panel';
import { formatBytes } from '../lib/format';
import { asciiLowerCase, tagError } from '../lib/tags';

function Usage() {
  // /api/v1/me answers a session too (account only, key null): the same numbers an API client sees.
  const me = useQuery({ queryKey: ['me'], queryFn: () => call(api.GET('/api/v1/me')) });
  if (!me.data) {
    return null;
  }
  const { uploads_active, storage_used_bytes, quota_bytes, quota_files } = me.data.account;
  return (
    <p className="usage" aria-label="Account usage">
      <span>
        <strong>{uploads_active}</strong> upload{uploads_active === 1 ? '' : 's'}
        {quota_files === null ? ' of unlimited' : ` of ${quota_files} allowed`}
      </span>
      <span>
        <strong>{formatBytes(storage_used_bytes)}</strong> stored
        {quota_bytes === null ? ' of unlimited storage' : ` of ${formatBytes(quota_bytes)} quota`}
      </span>
    </p>
  );
}

/** The gallery's tag filter lives in the URL (?tag=…), so a reload and back/forward keep it. */
function dashboardUrl(tag: string | null): string {
  return tag ? `/dashboard?tag=${encodeURIComponent(tag)}` : '/dashboard';
}

export default function DashboardPage() {
  const [, navigate] = useLocation();
  const requested = asciiLowerCase(new URLSearchParams(useSearch()).get('tag')?.trim() ?? '') || null;
  // A bad tag in the URL is told next to the field, like a typed one, and filters nothing.
  const urlError = requested ? tagError(requested) : null;
  const tag = urlError ? null : requested;
  const [tagInput, setTagInput] = useState(requested ?? '');
  const [typedError, setTypedError] = useState<string | null>(null);
  const refocus = useRefocus();

  // Back/forward (or a link) changed the filter: the field shows it.
  useEffect(() => {
    setTagInput(requested ?? '');
    setTypedError(null);
  }, [requested]);

  const filter = (e: FormEvent) => {
    e.preventDefault();
    const value = asciiLowerCase(tagInput.trim()) || null;
    const error = value ? tagError(value) : null;
    setTypedError(error);
    if (!error && value !== requested) {
      navigate(dashboardUrl(value));
    }
  };
  const error = typedError ?? urlError;

  return (
    <section className="page" aria-labelledby="uploads-title">
      <h1 id="uploads-title" tabIndex={-1}>
        Uploads
      </h1>
      <Usage />
      <UploadPanel />
      <h2 id="gallery-title" tabIndex={-1}>
        Your uploads
      </h2>
      <form className="tag-filter" role="search" aria-label="Filter by tag" onSubmit={filter} noValidate>
        <label htmlFor="tag-filter">Tag</label>
        <input
          id="tag-filter"
          type="search"
          value={tagInput}
          maxLength={32}
          onChange={(e) => setTagInput(e.target.value)}
          placeholder="e.g. screenshots"
          aria-invalid={error ? true : undefined}
          aria-describedby="tag-filter-error"
        />
        <button type="submit" className="button">
          Filter
        </button>
        {requested ? (
          <button
            id="show-all"
            type="button"
            className="button"
            onClick={() => {
              // The button goes with the filter: focus goes to the (now empty) tag field.
              refocus(
                () => !document.getElementById('show-all'),
                () => document.getElementById('tag-filter'),
              );
              navigate(dashboardUrl(null));
            }}
          >
            Show all
          </button>
        ) : null}
        <p id="tag-filter-error" className="field-error" aria-live="polite">
          {error ?? ''}
        </p>
      </form>
      <Gallery tag={tag} headingId="gallery-title" />
    </section>
  );
}
