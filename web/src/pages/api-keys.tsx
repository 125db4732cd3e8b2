import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, call, type Schemas } from '../api/client';
import { sentenceFor } from '../api/errors';
import { ConfirmDialog } from '../components/confirm-dialog';
import { CopyButton } from '../components/copy-button';
import { Dialog } from '../components/dialog';
import { Field } from '../components/field';
import { formatDate } from '../lib/format';

type Key = Schemas['KeyResponse'];
type CreatedKey = Schemas['CreateKeyResponse'];

/** API.md Part 1: a user has at most 10 active keys. */
const MAX_ACTIVE_KEYS = 10;

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
  // The token lives in this state only, while the dialog is open: it is never stored anywhere else.
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const [revoking, setRevoking] = useState<Key | null>(null);

  const create = useMutation({
    mutationFn: (name: string) => call(api.POST('/api/v1/keys', { body: { label: name } })),
    onSuccess: (data) => {
      setCreated(data);
      setLabel('');
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
    setLabelError(null);
    create.mutate(name);
  };

  const revoke = async (key: Key) => {
    await call(api.DELETE('/api/v1/keys/{id}', { params: { path: { id: key.id } } }));
    await queryClient.invalidateQueries({ queryKey: ['keys'] });
  };

  return (
    <section className="page" aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
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
        <button type="submit" className="button button-primary" disabled={create.isPending || atLimit}>
          {create.isPending ? 'Generating…' : 'Generate key'}
        </button>
      </form>

      <h2>Your keys</h2>
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
                  <td>
                    <button
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

      <h2>Use it</h2>
      <p>Send the key as a bearer token. To upload a file from a shell:</p>
      <pre className="code">{curlLine('fxf_…')}</pre>
      <p>
        The answer is JSON with the direct link (<code>url</code>) and a one-time <code>delete_url</code>. The
        whole API is described at <a href="/docs">/docs</a>.
      </p>

      <Dialog
        open={created !== null}
        onClose={() => setCreated(null)}
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
            <p>Try it:</p>
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
