import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, call, currentCsrfToken, toApiError, type Schemas } from '../api/client';
import { sentenceFor } from '../api/errors';
import { ConfirmDialog } from '../components/confirm-dialog';
import { CopyButton } from '../components/copy-button';
import { Dialog } from '../components/dialog';
import { Field } from '../components/field';
import { afterAction, afterRemoval, useRefocus } from '../components/refocus';
import { EXPIRY_CHOICES, formatDate } from '../lib/format';

type Key = Schemas['KeyResponse'];
type CreatedKey = Schemas['CreateKeyResponse'];

type Scope = Key['scopes'][number];
const ALL_SCOPES: { scope: Scope; label: string; hint: string }[] = [
  { scope: 'upload', label: 'Upload', hint: 'upload files, mint upload tokens, change tags' },
  { scope: 'read', label: 'Read', hint: 'list and look up uploads, /me' },
  { scope: 'delete', label: 'Delete', hint: 'delete uploads' },
];
const PRESETS: { name: string; scopes: Scope[] }[] = [
  { name: 'CI upload-only', scopes: ['upload'] },
  { name: 'Read-only', scopes: ['read'] },
  { name: 'Full', scopes: ['upload', 'read', 'delete'] },
];

function expiryLabel(seconds: number | null): string {
  if (seconds === null) {
    return 'never';
  }
  return EXPIRY_CHOICES.find((c) => c.seconds === String(seconds))?.label ?? `${seconds} s`;
}

/** A download that never puts a URL with a secret in the history: the bytes come by fetch, then a Blob link. */
function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

interface Message {
  ok: boolean;
  text: string;
}

const SHAREX_ID = 'download-sharex';
const GENERATE_ID = 'generate-key';

/**
 * The "Use it" panel: a ShareX config around a new upload-only key, and the curl snippet. Its message is the page's
 * (`message`), so a key made by the form clears a stale ShareX error, and a ShareX key clears the form's (`onMinted`).
 */
function UseIt({
  keys,
  message,
  setMessage,
  onMinted,
}: {
  keys: Key[];
  message: Message | null;
  setMessage: (message: Message | null) => void;
  onMinted: () => void;
}) {
  const queryClient = useQueryClient();
  const [keyId, setKeyId] = useState('');
  const [busy, setBusy] = useState(false);
  // Disabled while it works, the button loses the focus: it gets it back.
  const refocus = useRefocus();
  const curl = useQuery({
    queryKey: ['clients', 'curl'],
    queryFn: async () => {
      const res = await fetch('/api/v1/clients/curl', { credentials: 'same-origin' });
      if (!res.ok) {
        throw toApiError(res.status, res.headers, await res.json().catch(() => null));
      }
      return res.text();
    },
  });

  const sharex = async () => {
    setBusy(true);
    setMessage(null);
    refocus(...afterAction(SHAREX_ID, () => null));
    try {
      // GET, but it mints a key: the server wants X-CSRF-Token, so it goes through fetch, never an <a href>.
      const query = keyId ? `?key_id=${encodeURIComponent(keyId)}` : '';
      const res = await fetch(`/api/v1/clients/sharex${query}`, {
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': currentCsrfToken() ?? '' },
      });
      if (!res.ok) {
        throw toApiError(res.status, res.headers, await res.json().catch(() => null));
      }
      saveBlob(await res.blob(), `${window.location.hostname}.sxcu`);
      onMinted();
      setMessage({
        ok: true,
        text: 'Downloaded. It holds a new upload-only key labelled “ShareX”: revoke it here to cut ShareX off.',
      });
      void queryClient.invalidateQueries({ queryKey: ['keys'] });
    } catch (err) {
      setMessage({ ok: false, text: sentenceFor(err) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="use-title">
      <h2 id="use-title">Use it</h2>
      <h3>ShareX</h3>
      <p>
        A ShareX custom uploader for this server. Each download makes a new key that may only upload, so the
        file never carries a key that can read or delete your uploads.
      </p>
      <div className="form form-inline">
        <div className="field">
          <label htmlFor="sharex-key">Copy the default expiry of</label>
          <select id="sharex-key" value={keyId} onChange={(e) => setKeyId(e.target.value)}>
            <option value="">No key (uploads never expire)</option>
            {keys.map((k) => (
              <option key={k.id} value={k.id}>
                {k.label} (uploads expire: {expiryLabel(k.default_expires_in)})
              </option>
            ))}
          </select>
        </div>
        <button id={SHAREX_ID} type="button" className="button" onClick={() => void sharex()} disabled={busy}>
          {busy ? 'Preparing…' : 'Download ShareX config'}
        </button>
      </div>
      {message ? (
        <p className={message.ok ? 'status' : 'form-error'} role={message.ok ? 'status' : 'alert'}>
          {message.text}
        </p>
      ) : null}
      <h3>curl</h3>
      <p>
        Put a key in <code>FIXITFY_TOKEN</code> (an upload-only key is enough), then run this with the file to
        upload:
      </p>
      {curl.isError ? (
        <p className="form-error" role="alert">
          {sentenceFor(curl.error)}
        </p>
      ) : (
        <pre className="code" aria-label="curl snippet">
          {curl.data ?? 'Loading…'}
        </pre>
      )}
      <p>
        The answer is JSON with the direct link (<code>url</code>) and a one-time <code>delete_url</code>. The
        whole API is described at <a href="/docs">/docs</a>.
      </p>
    </section>
  );
}

/** API.md Part 1: a user has at most 10 active keys. */
const MAX_ACTIVE_KEYS = 10;

function revokeId(id: string): string {
  return `revoke-${id}`;
}

function curlLine(token: string): string {
  return `curl -H "Authorization: Bearer ${token}" -F "file=@photo.png" ${window.location.origin}/api/v1/upload`;
}

export default function ApiKeysPage() {
  const queryClient = useQueryClient();
  const keys = useQuery({ queryKey: ['keys'], queryFn: () => call(api.GET('/api/v1/keys')) });
  const active = (keys.data?.keys ?? []).filter((k) => !k.revoked_at);
  const atLimit = active.length >= MAX_ACTIVE_KEYS;

  const [label, setLabel] = useState('');
  const [labelError, setLabelError] = useState<string | null>(null);
  const [scopes, setScopes] = useState<Scope[]>(['upload', 'read', 'delete']);
  const [defaultExpiry, setDefaultExpiry] = useState('');
  // The token lives in this state only, while the dialog is open: it is never stored anywhere else.
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const [revoking, setRevoking] = useState<Key | null>(null);
  const [useItMessage, setUseItMessage] = useState<Message | null>(null);
  const refocus = useRefocus();

  const create = useMutation({
    mutationFn: (name: string) =>
      call(
        api.POST('/api/v1/keys', {
          body: {
            label: name,
            scopes,
            ...(defaultExpiry ? { default_expires_in: Number(defaultExpiry) } : {}),
          },
        }),
      ),
    onSuccess: (data) => {
      setCreated(data);
      setLabel('');
      // A key exists now: an error from an earlier try (here or in "Use it") is stale.
      setLabelError(null);
      setUseItMessage((m) => (m?.ok === false ? null : m));
      void queryClient.invalidateQueries({ queryKey: ['keys'] });
    },
    onError: (err) => setLabelError(sentenceFor(err)),
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const name = label.trim();
    if (!name) {
      setLabelError('Give the key a label, e.g. the script or machine that will use it.');
      return;
    }
    if (scopes.length === 0) {
      setLabelError('Tick at least one thing the key may do.');
      return;
    }
    setLabelError(null);
    create.mutate(name);
  };

  const revoke = async (key: Key) => {
    await call(api.DELETE('/api/v1/keys/{id}', { params: { path: { id: key.id } } }));
    // Its row (and Revoke button) goes: focus the next key's Revoke button, or the list's heading.
    refocus(
      ...afterRemoval(
        active.map((k) => k.id),
        key.id,
        (id) => document.getElementById(revokeId(id)),
        () => document.getElementById('your-keys-title'),
      ),
    );
    await queryClient.invalidateQueries({ queryKey: ['keys'] });
  };

  return (
    <section className="page" aria-labelledby="keys-title">
      <h1 id="keys-title" tabIndex={-1}>
        API keys
      </h1>
      <p>
        A key lets a script, a CI job or an app upload to your account and manage your uploads. Keep it
        secret: whoever has it can upload as you.
      </p>

      <h2>Generate a key</h2>
      {atLimit ? (
        <p className="notice notice-warning" role="status">
          You have {MAX_ACTIVE_KEYS} active keys, the most an account may have. Revoke one you no longer use
          to generate another.
        </p>
      ) : null}
      <form className="form form-inline" onSubmit={submit}>
        <Field
          label="Label"
          name="label"
          maxLength={64}
          placeholder="e.g. laptop, ci, sharex"
          value={label}
          onChange={(e) => setLabel(e.target.value)}
          error={labelError}
          hint={`${active.length} of ${MAX_ACTIVE_KEYS} active keys.`}
        />
        <fieldset className="scopes">
          <legend>What it may do</legend>
          <div className="scope-presets" role="group" aria-label="Presets">
            {PRESETS.map((p) => (
              <button
                key={p.name}
                type="button"
                className="button button-small"
                aria-pressed={p.scopes.length === scopes.length && p.scopes.every((s) => scopes.includes(s))}
                onClick={() => setScopes(p.scopes)}
              >
                {p.name}
              </button>
            ))}
          </div>
          {ALL_SCOPES.map((s) => (
            <label key={s.scope} className="checkbox">
              <input
                type="checkbox"
                checked={scopes.includes(s.scope)}
                onChange={(e) =>
                  setScopes((all) =>
                    e.target.checked
                      ? ALL_SCOPES.map((x) => x.scope).filter((x) => x === s.scope || all.includes(x))
                      : all.filter((x) => x !== s.scope),
                  )
                }
              />{' '}
              {s.label} <span className="field-hint">({s.hint})</span>
            </label>
          ))}
        </fieldset>
        <div className="field">
          <label htmlFor="key-expiry">Its uploads expire after</label>
          <select id="key-expiry" value={defaultExpiry} onChange={(e) => setDefaultExpiry(e.target.value)}>
            {EXPIRY_CHOICES.map((c) => (
              <option key={c.label} value={c.seconds}>
                {c.label}
              </option>
            ))}
          </select>
        </div>
        <button
          id={GENERATE_ID}
          type="submit"
          className="button button-primary"
          disabled={create.isPending || atLimit}
        >
          {create.isPending ? 'Generating…' : 'Generate key'}
        </button>
      </form>

      <h2 id="your-keys-title" tabIndex={-1}>
        Your keys
      </h2>
      {keys.isPending ? (
        <p className="status" role="status">
          Loading…
        </p>
      ) : keys.isError ? (
        <p className="form-error" role="alert">
          {sentenceFor(keys.error)}
        </p>
      ) : active.length === 0 ? (
        <p>No active keys yet.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Your active API keys</caption>
            <thead>
              <tr>
                <th scope="col">Label</th>
                <th scope="col">Prefix</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Requests</th>
                <th scope="col">Scopes</th>
                <th scope="col">Uploads expire</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {active.map((key) => (
                <tr key={key.id}>
                  <td>{key.label}</td>
                  <td>
                    <code>{key.prefix}…</code>
                  </td>
                  <td>{formatDate(key.created_at)}</td>
                  <td>{formatDate(key.last_used_at)}</td>
                  <td>{key.request_count}</td>
                  <td>{key.scopes.join(', ')}</td>
                  <td>{expiryLabel(key.default_expires_in)}</td>
                  <td>
                    <button
                      id={revokeId(key.id)}
                      type="button"
                      className="button button-small"
                      aria-label={`Revoke key ${key.label}`}
                      onClick={() => setRevoking(key)}
                    >
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <UseIt
        keys={active}
        message={useItMessage}
        setMessage={setUseItMessage}
        onMinted={() => setLabelError(null)}
      />

      <Dialog
        open={created !== null}
        onClose={() => setCreated(null)}
        // Generate key was disabled while the key was made, so it had lost the focus: it gets it back.
        returnFocus={() => document.getElementById(GENERATE_ID)}
        title="Your new API key"
        description={<p>Copy it now: it can&apos;t be shown again. The server keeps only a hash of it.</p>}
        actions={
          <button type="button" className="button button-primary" onClick={() => setCreated(null)}>
            Done
          </button>
        }
      >
        {created ? (
          <>
            <p className="notice notice-warning">
              This is the only time the key “{created.key.label}” is shown. If you lose it, revoke it and
              generate a new one.
            </p>
            <div className="secret">
              <code data-testid="new-key-token">{created.token}</code>
              <CopyButton text={created.token} label="Copy API key" />
            </div>
            <p>It may: {created.key.scopes.join(', ')}. Try it:</p>
            <pre className="code">{curlLine(created.token)}</pre>
          </>
        ) : null}
      </Dialog>

      <ConfirmDialog
        open={revoking !== null}
        title={`Revoke key “${revoking?.label ?? ''}”?`}
        description={
          <p>
            Every request with this key fails from now on, including the upload tokens it minted. This
            can&apos;t be undone.
          </p>
        }
        confirmLabel="Revoke key"
        onConfirm={() => (revoking ? revoke(revoking) : Promise.resolve())}
        onClose={() => setRevoking(null)}
      />
    </section>
  );
}
