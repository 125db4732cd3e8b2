import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, call } from '../api/client';
import { sentenceFor } from '../api/errors';
import { ConfirmDialog } from './confirm-dialog';
import { afterMore, afterRemoval, useRefocus } from './refocus';
import { cardId, UploadCard, type UploadItem } from './upload-card';

const PAGE_SIZE = 50;
const LOAD_MORE_ID = 'gallery-load-more';
const LIST_ID = 'gallery-list';

/**
 * The caller's uploads, newest first, loading the next page (next_before) as the end comes into view. After a
 * delete, focus goes to the next upload (else the previous one, else the element `headingId` names).
 */
export function Gallery({ tag, headingId }: { tag: string | null; headingId: string }) {
  const queryClient = useQueryClient();
  const [deleting, setDeleting] = useState<UploadItem | null>(null);
  const sentinel = useRef<HTMLDivElement>(null);
  const refocus = useRefocus();

  const uploads = useInfiniteQuery({
    queryKey: ['uploads', tag],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(
        api.GET('/api/v1/uploads', {
          params: { query: { limit: PAGE_SIZE, before: pageParam, tag: tag ?? undefined } },
        }),
      ),
    getNextPageParam: (last) => last.next_before ?? undefined,
  });
  const { hasNextPage, isFetchingNextPage, fetchNextPage } = uploads;

  // While the next page loads, Load more is disabled, and the last page takes it away: when it has the focus
  // (pressed, or reached with Tab, which scrolls it in and fires the observer), focus goes to the first upload added.
  const loadMore = useCallback(() => {
    if (document.activeElement?.id === LOAD_MORE_ID) {
      const shown = () => document.getElementById(LIST_ID)?.children;
      refocus(...afterMore(LOAD_MORE_ID, shown, shown()?.length ?? 0));
    }
    void fetchNextPage();
  }, [fetchNextPage, refocus]);

  useEffect(() => {
    const target = sentinel.current;
    if (!target || !hasNextPage) {
      return;
    }
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && !isFetchingNextPage) {
          loadMore();
        }
      },
      { rootMargin: '600px' },
    );
    observer.observe(target);
    return () => observer.disconnect();
  }, [hasNextPage, isFetchingNextPage, loadMore]);

  const remove = async (upload: UploadItem) => {
    await call(api.DELETE('/api/v1/uploads/{filename}', { params: { path: { filename: upload.filename } } }));
    const shown = uploads.data?.pages.flatMap((page) => page.uploads.map((u) => u.filename)) ?? [];
    refocus(
      ...afterRemoval(
        shown,
        upload.filename,
        (filename) => document.getElementById(cardId(filename)),
        () => document.getElementById(headingId),
      ),
    );
    await Promise.all([
      queryClient.invalidateQueries({ queryKey: ['uploads'] }),
      queryClient.invalidateQueries({ queryKey: ['me'] }),
    ]);
  };

  if (uploads.isPending) {
    return (
      <p className="status" role="status">
        Loading your uploads…
      </p>
    );
  }
  if (!uploads.data) {
    return (
      <p className="form-error" role="alert">
        {sentenceFor(uploads.error)}
      </p>
    );
  }
  // A failed next page keeps the pages already shown (the query's status is then 'error' with data).
  const pageError = uploads.error;
  const items = uploads.data.pages.flatMap((page) => page.uploads);
  return (
    <>
      {items.length === 0 ? (
        <p>{tag ? `No uploads tagged “${tag}”.` : 'No uploads yet: drop an image above.'}</p>
      ) : (
        <ul id={LIST_ID} className="gallery" aria-label={tag ? `Uploads tagged ${tag}` : 'Your uploads'}>
          {items.map((upload) => (
            <UploadCard key={upload.filename} upload={upload} onDelete={setDeleting} />
          ))}
        </ul>
      )}
      <div ref={sentinel} className="gallery-end">
        {hasNextPage ? (
          <button
            id={LOAD_MORE_ID}
            type="button"
            className="button"
            onClick={loadMore}
            disabled={isFetchingNextPage}
          >
            {isFetchingNextPage ? 'Loading more…' : 'Load more'}
          </button>
        ) : items.length > 0 ? (
          <p className="status">That is all of them ({items.length}).</p>
        ) : null}
        {pageError ? (
          <p className="form-error" role="alert">
            {sentenceFor(pageError)}
          </p>
        ) : null}
      </div>
      <ConfirmDialog
        open={deleting !== null}
        title={`Delete ${deleting?.filename ?? ''}?`}
        description={<p>Its direct link stops working at once, everywhere. This can&apos;t be undone.</p>}
        confirmLabel="Delete upload"
        onConfirm={() => (deleting ? remove(deleting) : Promise.resolve())}
        onClose={() => setDeleting(null)}
      />
    </>
  );
}
