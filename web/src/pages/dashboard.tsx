import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, call } from '../api/client';
import { Gallery } from '../components/gallery';
import { UploadPanel } from '../components/upload-panel';
import { formatBytes } from '../lib/format';

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

export default function DashboardPage() {
  const [tagInput, setTagInput] = useState('');
  const [tag, setTag] = useState<string | null>(null);

  const filter = (e: FormEvent) => {
    e.preventDefault();
    setTag(tagInput.trim().toLowerCase() || null);
  };

  return (
    <section className="page" aria-labelledby="uploads-title">
      <h1 id="uploads-title">Uploads</h1>
      <Usage />
      <UploadPanel />
      <h2>Your uploads</h2>
      <form className="tag-filter" role="search" aria-label="Filter by tag" onSubmit={filter}>
        <label htmlFor="tag-filter">Tag</label>
        <input
          id="tag-filter"
          type="search"
          value={tagInput}
          maxLength={32}
          onChange={(e) => setTagInput(e.target.value)}
          placeholder="e.g. screenshots"
        />
        <button type="submit" className="button">
          Filter
        </button>
        {tag ? (
          <button
            type="button"
            className="button"
            onClick={() => {
              setTag(null);
              setTagInput('');
            }}
          >
            Show all
          </button>
        ) : null}
      </form>
      <Gallery tag={tag} />
    </section>
  );
}
