import { useQueryClient } from '@tanstack/react-query';
import { type DragEvent, useCallback, useEffect, useRef, useState } from 'react';
import { errorSentence, sentenceFor } from '../api/errors';
import { uploadFile, type UploadResult } from '../api/upload';
import { EXPIRY_CHOICES, formatBytes } from '../lib/format';
import { tagListError } from '../lib/tags';
import { CopyButton } from './copy-button';
import { Field } from './field';

/** API.md Part 1: at most 20 MB (20 × 1024 × 1024 bytes); larger files are refused before a byte is sent. */
const MAX_BYTES = 20 * 1024 * 1024;
/** Files sent at once (the server allows 4 in flight per account). */
const CONCURRENCY = 2;

interface QueueItem {
  id: number;
  file: File;
  name: string;
  state: 'waiting' | 'uploading' | 'done' | 'failed';
  /** The tags and expiry in the form when the file was added ("given to the files added next"). */
  tags: string;
  expiresIn?: number;
  sent: number;
  total: number;
  result?: UploadResult;
  error?: string;
}

let nextId = 1;

/** Drop, pick or paste images; each file gets its own row, progress bar and outcome. */
export function UploadPanel() {
  const queryClient = useQueryClient();
  const [items, setItems] = useState<QueueItem[]>([]);
  const [tags, setTags] = useState('');
  const [tagsError, setTagsError] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const tagsInput = useRef<HTMLInputElement>(null);
  const tagsRef = useRef(tags);
  tagsRef.current = tags;
  const [expiry, setExpiry] = useState('');
  const expiryRef = useRef(expiry);
  expiryRef.current = expiry;
  const running = useRef(0);
  const queue = useRef<QueueItem[]>([]);

  const update = (id: number, change: Partial<QueueItem>) =>
    setItems((all) => all.map((item) => (item.id === id ? { ...item, ...change } : item)));

  const pump = useCallback(() => {
    while (running.current < CONCURRENCY && queue.current.length > 0) {
      const item = queue.current.shift()!;
      running.current++;
      update(item.id, { state: 'uploading' });
      uploadFile(item.file, {
        tags: item.tags,
        expiresIn: item.expiresIn,
        onProgress: (sent, total) => update(item.id, { sent, total }),
      })
        .then((result) => {
          update(item.id, { state: 'done', result, sent: item.file.size, total: item.file.size });
          void queryClient.invalidateQueries({ queryKey: ['uploads'] });
          void queryClient.invalidateQueries({ queryKey: ['me'] });
        })
        .catch((err: unknown) => update(item.id, { state: 'failed', error: sentenceFor(err) }))
        .finally(() => {
          running.current--;
          pump();
        });
    }
  }, [queryClient]);

  const add = useCallback(
    (files: Iterable<File>) => {
      const added: QueueItem[] = [];
      // The server's tag rules, checked before a byte is sent: the sentence goes next to the field.
      const badTags = tagListError(tagsRef.current);
      setTagsError(badTags);
      for (const file of files) {
        const item: QueueItem = {
          id: nextId++,
          file,
          name: file.name || 'pasted image',
          state: 'waiting',
          tags: tagsRef.current,
          expiresIn: expiryRef.current ? Number(expiryRef.current) : undefined,
          sent: 0,
          total: file.size,
        };
        if (badTags) {
          item.state = 'failed';
          item.error = 'Not sent: fix the tags above, then add the file again.';
        } else if (file.size > MAX_BYTES) {
          item.state = 'failed';
          item.error = errorSentence('too_large');
        } else {
          queue.current.push(item);
        }
        added.push(item);
      }
      setItems((all) => [...added.reverse(), ...all]);
      if (badTags && added.length > 0) {
        tagsInput.current?.focus();
      }
      pump();
    },
    [pump],
  );

  // Paste from the clipboard anywhere on the page (text pastes into fields are left alone).
  useEffect(() => {
    const onPaste = (e: ClipboardEvent) => {
      const files = [...(e.clipboardData?.files ?? [])];
      if (files.length > 0) {
        e.preventDefault();
        add(files);
      }
    };
    document.addEventListener('paste', onPaste);
    return () => document.removeEventListener('paste', onPaste);
  }, [add]);

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    add([...e.dataTransfer.files]);
  };

  return (
    <section className="upload-panel" aria-labelledby="upload-title">
      <h2 id="upload-title">Upload</h2>
      <div
        className={dragging ? 'dropzone dropzone-active' : 'dropzone'}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <p>Drop images here, paste them, or</p>
        <button type="button" className="button button-primary" onClick={() => input.current?.click()}>
          Choose files
        </button>
        <input
          ref={input}
          type="file"
          multiple
          accept="image/png,image/jpeg,image/gif,image/webp,image/avif"
          className="visually-hidden"
          aria-label="Choose images to upload"
          tabIndex={-1}
          onChange={(e) => {
            add([...(e.target.files ?? [])]);
            e.target.value = '';
          }}
        />
        <p className="field-hint">PNG, JPEG, GIF, WebP or AVIF, up to 20 MB each.</p>
      </div>
      <Field
        ref={tagsInput}
        label="Tags (optional)"
        name="tags"
        value={tags}
        onChange={(e) => {
          setTags(e.target.value);
          // Told on leaving the field or adding files; cleared as soon as it is right.
          if (tagsError && !tagListError(e.target.value)) {
            setTagsError(null);
          }
        }}
        onBlur={(e) => setTagsError(tagListError(e.target.value))}
        error={tagsError}
        hint="Comma-separated, up to 10, each of a–z, 0–9, - and _. Given to the files added next."
      />
      <div className="field">
        <label htmlFor="upload-expiry">Expires after</label>
        <select
          id="upload-expiry"
          value={expiry}
          onChange={(e) => setExpiry(e.target.value)}
          aria-describedby="upload-expiry-hint"
        >
          {EXPIRY_CHOICES.map((c) => (
            <option key={c.label} value={c.seconds}>
              {c.label}
            </option>
          ))}
        </select>
        <p id="upload-expiry-hint" className="field-hint">
          The direct link stops working then and the upload is deleted. For the files added next.
        </p>
      </div>
      {items.length > 0 ? (
        <ul className="upload-queue" aria-label="Files being uploaded">
          {items.map((item) => (
            <UploadRow key={item.id} item={item} />
          ))}
        </ul>
      ) : null}
    </section>
  );
}

function UploadRow({ item }: { item: QueueItem }) {
  const percent = item.total > 0 ? Math.round((item.sent / item.total) * 100) : 0;
  return (
    <li className={`upload-row upload-row-${item.state}`}>
      <div className="upload-row-head">
        <span className="upload-row-name">{item.name}</span>
        <span className="status">{formatBytes(item.file.size)}</span>
      </div>
      <progress
        max={100}
        value={item.state === 'done' ? 100 : percent}
        aria-label={`Upload progress of ${item.name}`}
      />
      <div className="upload-row-outcome" aria-live="polite">
        {item.state === 'waiting' ? <span className="status">Waiting…</span> : null}
        {item.state === 'uploading' ? (
          <span className="status">{percent < 100 ? `Sending… ${percent}%` : 'Checking the image…'}</span>
        ) : null}
        {item.state === 'failed' ? <span className="form-error">{item.error}</span> : null}
        {item.state === 'done' && item.result ? (
          <UploadOutcome result={item.result} name={item.name} />
        ) : null}
      </div>
    </li>
  );
}

function UploadOutcome({ result, name }: { result: UploadResult; name: string }) {
  // A dedupe hit answers with the upload you already have, and its delete link again: never "shown once".
  const again = result.deduplicated === true;
  return (
    <div className="upload-outcome">
      <p>
        {again ? 'You had already uploaded this image' : 'Uploaded'}:{' '}
        <a href={result.url} target="_blank" rel="noopener noreferrer">
          {result.url}
        </a>{' '}
        <CopyButton text={result.url} label={`Copy link of ${name}`} className="button button-small" />
      </p>
      <p className="secret">
        <span>{again ? 'Its delete link:' : 'Delete link (shown once):'}</span>
        <code>{result.delete_url}</code>
        <CopyButton
          text={result.delete_url}
          label={`Copy delete link of ${name}`}
          className="button button-small"
        />
      </p>
    </div>
  );
}
