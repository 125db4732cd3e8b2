import type { Schemas } from '../../api/client';
import { formatDuration } from './format';
import { formatDate } from '../../lib/format';

export type Delivery = Schemas['DeliveryResponse'];

/** The id of a delivery's Redeliver button (focused again once the redelivery is done). */
export function redeliverId(id: string): string {
  return `redeliver-${id}`;
}

/** One endpoint's delivery attempts, newest first: what was sent, what came back, and when. */
export function DeliveriesTable({
  id,
  caption,
  endpointUrl,
  deliveries,
  onRedeliver,
  busyId,
}: {
  /** The scrolling region's id. */
  id?: string;
  caption: string;
  /** Named by each Redeliver button, as every endpoint's table has the same buttons. */
  endpointUrl: string;
  deliveries: Delivery[];
  /** Sends a past delivery again under its delivery id. */
  onRedeliver?: (delivery: Delivery) => void;
  busyId?: string | null;
}) {
  return (
    // Focusable: at 375 px the table scrolls sideways, and keyboard users must be able to scroll it too.
    <div id={id} className="table-wrap" role="region" aria-label={caption} tabIndex={0}>
      <table className="deliveries">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Event</th>
            <th scope="col">Attempt</th>
            <th scope="col">Result</th>
            <th scope="col">Status code</th>
            <th scope="col">Duration</th>
            <th scope="col">Error</th>
            <th scope="col">Time</th>
            {onRedeliver ? (
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>
          {deliveries.map((d) => (
            <tr key={d.id}>
              <td>
                <code>{d.event}</code>
              </td>
              <td>{d.attempt}</td>
              <td>
                <span className={d.succeeded ? 'badge badge-ok' : 'badge badge-danger'}>
                  {d.succeeded ? 'Delivered' : 'Failed'}
                </span>
              </td>
              <td>{d.status_code ?? 'no answer'}</td>
              <td>{formatDuration(d.duration_ms)}</td>
              <td className="cell-wrap">{d.error ?? '—'}</td>
              <td>
                <time dateTime={d.created_at}>{formatDate(d.created_at)}</time>
              </td>
              {onRedeliver ? (
                <td>
                  <button
                    id={redeliverId(d.id)}
                    type="button"
                    className="button button-small"
                    aria-label={`Redeliver ${d.event} attempt ${d.attempt} of ${formatDate(d.created_at)} to ${endpointUrl}`}
                    disabled={busyId === d.id}
                    onClick={() => onRedeliver(d)}
                  >
                    {busyId === d.id ? 'Sending…' : 'Redeliver'}
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
