import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useId, useState } from 'react';
import { api, call, type Schemas } from '../api/client';
import { sentenceFor } from '../api/errors';
import { ConfirmDialog } from '../components/confirm-dialog';
import { CopyButton } from '../components/copy-button';
import { Field, FormError } from '../components/field';
import { afterAction, afterMore, afterRemoval, useRefocus } from '../components/refocus';
import { DeliveriesTable, redeliverId } from '../components/webhooks/deliveries-table';
import { VerifyPanel } from '../components/webhooks/verify-panel';
import { formatDuration } from '../components/webhooks/format';
import { endSentence, formatDate } from '../lib/format';
import '../components/webhooks/webhooks.css';

type Webhook = Schemas['WebhookResponse'];
type EventName = Webhook['events'][number];

const EVENTS: { name: EventName; hint: string }[] = [
  { name: 'upload.created', hint: 'an upload was stored' },
  { name: 'upload.deleted', hint: 'by you, a delete link, an admin, or because it expired' },
  { name: 'upload.rejected', hint: 'the content review refused an image' },
  { name: 'api_key.created', hint: 'a key was generated' },
  { name: 'api_key.revoked', hint: 'a key was revoked' },
];

/** Checkboxes of the events an endpoint gets. */
function EventsPicker({
  legend,
  value,
  onChange,
}: {
  legend: string;
  value: EventName[];
  onChange: (events: EventName[]) => void;
}) {
  const id = useId();
  return (
    <fieldset className="events-picker">
      <legend>{legend}</legend>
      {EVENTS.map((e) => (
        <div className="checkbox" key={e.name}>
          <input
            id={`${id}-${e.name}`}
            type="checkbox"
            checked={value.includes(e.name)}
            onChange={(ev) =>
              onChange(
                ev.target.checked
                  ? EVENTS.map((x) => x.name).filter((x) => x === e.name || value.includes(x))
                  : value.filter((x) => x !== e.name),
              )
            }
          />
          <label htmlFor={`${id}-${e.name}`}>
            <code>{e.name}</code> <span className="muted">({e.hint})</span>
          </label>
        </div>
      ))}
    </fieldset>
  );
}

const WEBHOOKS_KEY = ['webhooks'] as const;
/** The page polls while open, so a delivery made by an upload elsewhere shows up without a reload. */
const POLL_MS = 5_000;
const DELIVERIES_PER_PAGE = 10;

const REVEAL_ID = 'reveal-secret';
const HIDE_ID = 'hide-secret';
const COPY_SECRET_ID = 'copy-secret';
const ADD_ID = 'add-endpoint';

/** The signing secret: hidden until asked for, copied in one click, rotated after a confirmation. */
function SigningSecret() {
  // Component state only: the secret leaves memory with the page.
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [rotating, setRotating] = useState(false);
  const [notice, setNotice] = useState('');
  // Reveal becomes Copy + Hide and back: focus goes to what took the pressed button's place.
  const refocus = useRefocus();

  const reveal = async () => {
    setBusy(true);
    setError(null);
    refocus(...afterAction(REVEAL_ID, () => document.getElementById(COPY_SECRET_ID)));
    try {
      setSecret((await call(api.GET('/api/v1/webhooks/secret'))).signing_secret);
    } catch (err) {
      setError(sentenceFor(err));
    } finally {
      setBusy(false);
    }
  };

  const hide = () => {
    setSecret(null);
    refocus(...afterAction(HIDE_ID, () => document.getElementById(REVEAL_ID)));
  };

  const rotate = async () => {
    const data = await call(api.POST('/api/v1/webhooks/secret/rotate'));
    setSecret(data.signing_secret);
    setNotice('A new signing secret is in use. Update your receivers: deliveries are now signed with it.');
  };

  return (
    <section className="panel" aria-labelledby="secret-title">
      <h2 id="secret-title">Signing secret</h2>
      <p>
        Every delivery is signed with this secret, the same for all of your endpoints. Keep it on your server,
        like a password.
      </p>
      <div className="secret-row">
        {secret ? (
          <p className="secret">
            <span className="visually-hidden">Signing secret: </span>
            <code>{secret}</code>
          </p>
        ) : (
          <p className="secret secret-hidden">Signing secret hidden</p>
        )}
        <div className="actions">
          {secret ? (
            <>
              <CopyButton id={COPY_SECRET_ID} text={secret} label="Copy signing secret" />
              <button id={HIDE_ID} type="button" className="button" onClick={hide}>
                Hide
              </button>
            </>
          ) : (
            <button
              id={REVEAL_ID}
              type="button"
              className="button"
              onClick={() => void reveal()}
              disabled={busy}
            >
              {busy ? 'Loading…' : 'Reveal secret'}
            </button>
          )}
          <button type="button" className="button" onClick={() => setRotating(true)}>
            Rotate secret
          </button>
        </div>
      </div>
      <FormError message={error} />
      <p className="status" role="status">
        {notice}
      </p>
      <ConfirmDialog
        open={rotating}
        title="Rotate the signing secret?"
        description={
          <p>
            A new secret replaces this one at once. Deliveries from now on are signed with the new secret, so
            receivers that still check the old one will reject them until you update them.
          </p>
        }
        confirmLabel="Rotate secret"
        onConfirm={rotate}
        onClose={() => setRotating(false)}
      />
    </section>
  );
}

/** URL + enabled; the server judges the URL (http/https, no private addresses unless allowed). */
function AddEndpoint() {
  const queryClient = useQueryClient();
  const checkboxId = useId();
  const [url, setUrl] = useState('');
  const [enabled, setEnabled] = useState(true);
  const [events, setEvents] = useState<EventName[]>(['upload.created']);
  const [fieldError, setFieldError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState('');
  const refocus = useRefocus();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setNotice('');
    const value = url.trim();
    if (!/^https?:\/\/\S+$/i.test(value)) {
      setFieldError('Enter a URL that starts with https:// or http://.');
      return;
    }
    if (events.length === 0) {
      setFieldError('Tick at least one event to send to it.');
      return;
    }
    setFieldError(null);
    setBusy(true);
    refocus(...afterAction(ADD_ID, () => null));
    try {
      const { webhook } = await call(api.POST('/api/v1/webhooks', { body: { url: value, enabled, events } }));
      setUrl('');
      setEnabled(true);
      setEvents(['upload.created']);
      setNotice(`Added ${webhook.url}.`);
      await queryClient.invalidateQueries({ queryKey: WEBHOOKS_KEY });
    } catch (err) {
      setError(sentenceFor(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="add-title">
      <h2 id="add-title">Add an endpoint</h2>
      <form className="form webhook-form" onSubmit={(e) => void submit(e)} noValidate>
        <Field
          label="Endpoint URL"
          type="url"
          name="url"
          inputMode="url"
          autoComplete="url"
          placeholder="https://example.com/webhooks/fixitfy"
          maxLength={2048}
          required
          value={url}
          onChange={(e) => setUrl(e.target.value)}
          error={fieldError}
          hint="We POST the events ticked below here. The address must be reachable from this server."
        />
        <EventsPicker legend="Events to send" value={events} onChange={setEvents} />
        <div className="checkbox">
          <input
            id={checkboxId}
            type="checkbox"
            checked={enabled}
            onChange={(e) => setEnabled(e.target.checked)}
          />
          <label htmlFor={checkboxId}>Enabled</label>
        </div>
        <button id={ADD_ID} type="submit" className="button button-primary" disabled={busy}>
          {busy ? 'Adding…' : 'Add endpoint'}
        </button>
        <FormError message={error} />
        <p className="status" role="status">
          {notice}
        </p>
      </form>
    </section>
  );
}

function stateSentence(hook: Webhook): string {
  if (hook.enabled) {
    return 'Enabled: events are sent to it.';
  }
  if (hook.disabled_reason === 'failing') {
    return (
      `Disabled automatically on ${formatDate(hook.disabled_at)}: no delivery succeeded for days. Retries already ` +
      'scheduled still run; new events are held and sent when you enable it again.'
    );
  }
  return `Turned off on ${formatDate(hook.disabled_at)}: nothing is sent until you enable it again.`;
}

/** The id of an endpoint's article (focused after the endpoint before it is deleted). */
function endpointId(id: string): string {
  return `endpoint-${id}`;
}

/** " <url>" for a button's accessible name: every endpoint has the same buttons, so each says whose it is. */
function ForEndpoint({ url, prefix = '' }: { url: string; prefix?: string }) {
  return <span className="visually-hidden">{` ${prefix}${url}`}</span>;
}

/** One endpoint: its state, its counters, its actions and its recent deliveries. */
function Endpoint({ hook, onDeleted }: { hook: Webhook; onDeleted: () => void }) {
  const queryClient = useQueryClient();
  const titleId = useId();
  const [busy, setBusy] = useState<'toggle' | 'ping' | 'events' | null>(null);
  const [events, setEvents] = useState<EventName[]>(hook.events);
  const [eventsNotice, setEventsNotice] = useState('');
  const [redelivering, setRedelivering] = useState<string | null>(null);
  const [redeliverResult, setRedeliverResult] = useState('');
  const eventsChanged = events.length !== hook.events.length || events.some((e) => !hook.events.includes(e));
  const [error, setError] = useState<string | null>(null);
  const [pingResult, setPingResult] = useState('');
  const [deleting, setDeleting] = useState(false);
  const deliveriesKey = ['webhook-deliveries', hook.id];
  // Each action disables its button while it runs (Save events and Show older deliveries may then be gone):
  // focus goes back to it, or to what the action says.
  const refocus = useRefocus();
  const ids = {
    toggle: `${titleId}-toggle`,
    ping: `${titleId}-ping`,
    save: `${titleId}-save`,
    older: `${titleId}-older`,
    status: `${titleId}-status`,
    deliveries: `${titleId}-deliveries`,
  };
  const status = () => document.getElementById(ids.status);

  const deliveries = useInfiniteQuery({
    queryKey: deliveriesKey,
    queryFn: ({ pageParam }) =>
      call(
        api.GET('/api/v1/webhooks/{id}/deliveries', {
          params: { path: { id: hook.id }, query: { limit: DELIVERIES_PER_PAGE, before: pageParam } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_before ?? undefined,
    refetchInterval: POLL_MS,
  });
  const rows = deliveries.data?.pages.flatMap((p) => p.deliveries) ?? [];

  const refresh = () =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: WEBHOOKS_KEY }),
      queryClient.invalidateQueries({ queryKey: deliveriesKey }),
    ]);

  const toggle = async () => {
    setBusy('toggle');
    setError(null);
    refocus(...afterAction(ids.toggle, status));
    try {
      await call(
        api.PATCH('/api/v1/webhooks/{id}', {
          params: { path: { id: hook.id } },
          body: { enabled: !hook.enabled },
        }),
      );
      await refresh();
    } catch (err) {
      setError(sentenceFor(err));
    } finally {
      setBusy(null);
    }
  };

  const ping = async () => {
    setBusy('ping');
    setError(null);
    refocus(...afterAction(ids.ping, status));
    setPingResult('');
    setEventsNotice('');
    setRedeliverResult('');
    try {
      const { delivery } = await call(
        api.POST('/api/v1/webhooks/{id}/test', { params: { path: { id: hook.id } } }),
      );
      // The receiver's error may end its own sentence ("Connection failed: ECONNREFUSED."): never "..".
      setPingResult(
        delivery.succeeded
          ? `Ping delivered: answered ${delivery.status_code ?? ''} in ${formatDuration(delivery.duration_ms)}.`
          : endSentence(
              `Ping failed: ${delivery.error ?? (delivery.status_code ? `answered ${delivery.status_code}` : 'no answer')}`,
            ),
      );
      await refresh();
    } catch (err) {
      setError(sentenceFor(err));
    } finally {
      setBusy(null);
    }
  };

  const saveEvents = async () => {
    if (events.length === 0) {
      setError('Tick at least one event; to stop all of them, disable the endpoint.');
      return;
    }
    setBusy('events');
    setError(null);
    setEventsNotice('');
    // Saved, the button goes (the boxes match what is saved): focus goes to the sentence that says so.
    refocus(...afterAction(ids.save, status));
    setPingResult('');
    setRedeliverResult('');
    try {
      const { webhook } = await call(
        api.PATCH('/api/v1/webhooks/{id}', { params: { path: { id: hook.id } }, body: { events } }),
      );
      setEvents(webhook.events);
      setEventsNotice(`Saved: it now gets ${webhook.events.join(', ')}.`);
      await refresh();
    } catch (err) {
      setError(sentenceFor(err));
    } finally {
      setBusy(null);
    }
  };

  const redeliver = async (d: { id: string; delivery_id: string; event: string }) => {
    setRedelivering(d.id);
    setError(null);
    setRedeliverResult('');
    refocus(...afterAction(redeliverId(d.id), status));
    setPingResult('');
    setEventsNotice('');
    try {
      const { delivery } = await call(
        api.POST('/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver', {
          params: { path: { id: hook.id, delivery_id: d.delivery_id } },
        }),
      );
      setRedeliverResult(
        delivery.succeeded
          ? `Redelivered ${d.event} (delivery ${d.delivery_id}): answered ${delivery.status_code ?? ''} in ${formatDuration(delivery.duration_ms)}.`
          : endSentence(
              `Redelivery of ${d.event} (delivery ${d.delivery_id}) failed: ${delivery.error ?? (delivery.status_code ? `answered ${delivery.status_code}` : 'no answer')}`,
            ),
      );
      await refresh();
    } catch (err) {
      setError(sentenceFor(err));
    } finally {
      setRedelivering(null);
    }
  };

  const remove = async () => {
    await call(api.DELETE('/api/v1/webhooks/{id}', { params: { path: { id: hook.id } } }));
    onDeleted();
    await queryClient.invalidateQueries({ queryKey: WEBHOOKS_KEY });
  };

  return (
    <article id={endpointId(hook.id)} className="endpoint" aria-labelledby={titleId} tabIndex={-1}>
      <h3 id={titleId} className="endpoint-url">
        {hook.url}
      </h3>
      <p className={hook.enabled ? 'endpoint-state' : 'endpoint-state endpoint-off'}>{stateSentence(hook)}</p>
      <dl className="stats">
        <div>
          <dt>Failures in a row</dt>
          <dd>{hook.failure_count}</dd>
        </div>
        <div>
          <dt>Last success</dt>
          <dd>{formatDate(hook.last_success_at)}</dd>
        </div>
        <div>
          <dt>Last failure</dt>
          <dd>{formatDate(hook.last_failure_at)}</dd>
        </div>
        <div>
          <dt>Added</dt>
          <dd>{formatDate(hook.created_at)}</dd>
        </div>
      </dl>
      <div className="actions">
        <button
          id={ids.toggle}
          type="button"
          className="button"
          onClick={() => void toggle()}
          disabled={busy !== null}
        >
          {hook.enabled ? 'Disable' : 'Enable'}
          <ForEndpoint url={hook.url} />
        </button>
        <button
          id={ids.ping}
          type="button"
          className="button"
          onClick={() => void ping()}
          disabled={busy !== null}
        >
          {busy === 'ping' ? 'Sending…' : 'Send test ping'}
          <ForEndpoint url={hook.url} prefix="to " />
        </button>
        <button type="button" className="button button-danger" onClick={() => setDeleting(true)}>
          Delete
          <ForEndpoint url={hook.url} prefix="endpoint " />
        </button>
      </div>
      <EventsPicker legend="Events it gets" value={events} onChange={setEvents} />
      {eventsChanged ? (
        <button
          id={ids.save}
          type="button"
          className="button"
          onClick={() => void saveEvents()}
          disabled={busy !== null}
        >
          {busy === 'events' ? 'Saving…' : 'Save events'}
          <ForEndpoint url={hook.url} prefix="of " />
        </button>
      ) : null}
      <FormError message={error} />
      <p id={ids.status} className="status" role="status" tabIndex={-1}>
        {pingResult || eventsNotice || redeliverResult}
      </p>
      <h4>Recent deliveries</h4>
      {deliveries.isPending ? (
        <p className="status">Loading deliveries…</p>
      ) : deliveries.isError ? (
        <FormError message={sentenceFor(deliveries.error)} />
      ) : rows.length === 0 ? (
        <p className="muted">No deliveries yet. Upload an image or send a test ping.</p>
      ) : (
        <>
          <DeliveriesTable
            id={ids.deliveries}
            caption={`Recent deliveries to ${hook.url}`}
            endpointUrl={hook.url}
            deliveries={rows}
            onRedeliver={(d) => void redeliver(d)}
            busyId={redelivering}
          />
          {deliveries.hasNextPage ? (
            <button
              id={ids.older}
              type="button"
              className="button"
              onClick={() => {
                const shown = () => document.getElementById(ids.deliveries)?.querySelectorAll('tbody tr');
                refocus(...afterMore(ids.older, shown, rows.length));
                void deliveries.fetchNextPage();
              }}
              disabled={deliveries.isFetchingNextPage}
            >
              {deliveries.isFetchingNextPage ? 'Loading…' : 'Show older deliveries'}
              <ForEndpoint url={hook.url} prefix="to " />
            </button>
          ) : null}
        </>
      )}
      <ConfirmDialog
        open={deleting}
        title="Delete this endpoint?"
        description={
          <p>
            <span className="break">{hook.url}</span> stops getting events at once, its pending deliveries are
            dropped and its delivery history is deleted.
          </p>
        }
        confirmLabel="Delete endpoint"
        onConfirm={remove}
        onClose={() => setDeleting(false)}
      />
    </article>
  );
}

function Endpoints() {
  const hooks = useQuery({
    queryKey: WEBHOOKS_KEY,
    queryFn: () => call(api.GET('/api/v1/webhooks')),
    refetchInterval: POLL_MS,
  });
  // A deleted endpoint takes its Delete button (and its dialog) with it: focus goes to the next one, or the heading.
  const refocus = useRefocus();
  const deleted = (id: string) =>
    refocus(
      ...afterRemoval(
        hooks.data?.webhooks.map((h) => h.id) ?? [],
        id,
        (key) => document.getElementById(endpointId(key)),
        () => document.getElementById('endpoints-title'),
      ),
    );
  return (
    <section className="panel" aria-labelledby="endpoints-title">
      <h2 id="endpoints-title" tabIndex={-1}>
        Endpoints
      </h2>
      {hooks.isPending ? (
        <p className="status" role="status">
          Loading…
        </p>
      ) : hooks.isError ? (
        <FormError message={sentenceFor(hooks.error)} />
      ) : hooks.data.webhooks.length === 0 ? (
        <p className="muted">No endpoints yet. Add one above to get an event for every upload.</p>
      ) : (
        hooks.data.webhooks.map((hook) => (
          <Endpoint key={hook.id} hook={hook} onDeleted={() => deleted(hook.id)} />
        ))
      )}
    </section>
  );
}

/** /dashboard/webhooks: the signing secret, the endpoints with their deliveries, and how to verify a delivery. */
export default function WebhooksPage() {
  return (
    <section className="page" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Webhooks
      </h1>
      <p>
        We POST the events each endpoint subscribes to (by default <code>upload.created</code>, whenever you
        upload, through the website or the API) to every enabled endpoint. Failed deliveries are retried with
        backoff for about an hour.
      </p>
      <SigningSecret />
      <AddEndpoint />
      <Endpoints />
      <VerifyPanel />
    </section>
  );
}
