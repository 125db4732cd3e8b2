import { currentCsrfToken, toApiError, type Schemas } from './client';

export type UploadResult = Schemas['UploadResponse'];

export interface UploadOptions {
  /** Comma-separated tags (API.md: at most 10, each 1–32 of [a-z0-9_-]). */
  tags?: string;
  /** Called as the request body goes out: bytes sent and the total. */
  onProgress?: (sent: number, total: number) => void;
  /** Seconds until the upload expires (API.md Part 3, 60–31536000); undefined = never (or the key's default). */
  expiresIn?: number;
  signal?: AbortSignal;
}

/**
 * POST /api/v1/upload with the session cookie and X-CSRF-Token. The one call not made through the generated
 * client: fetch has no upload progress, XMLHttpRequest does. Typed with the generated schema all the same, and it
 * fails with the same ApiError the client throws.
 */
export function uploadFile(file: Blob, options: UploadOptions = {}): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/upload');
    xhr.withCredentials = true;
    xhr.responseType = 'json';
    const csrf = currentCsrfToken();
    if (csrf) {
      xhr.setRequestHeader('X-CSRF-Token', csrf);
    }
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) {
        options.onProgress?.(e.loaded, e.total);
      }
    });
    xhr.addEventListener('load', () => {
      const headers = new Headers();
      const retry = xhr.getResponseHeader('Retry-After');
      if (retry) {
        headers.set('Retry-After', retry);
      }
      const body: unknown = xhr.response;
      if (
        xhr.status === 200 &&
        typeof body === 'object' &&
        body !== null &&
        (body as { ok?: unknown }).ok === true
      ) {
        resolve(body as UploadResult);
      } else {
        reject(toApiError(xhr.status, headers, body));
      }
    });
    xhr.addEventListener('error', () =>
      reject(toApiError(0, new Headers(), { code: 'network', error: 'network' })),
    );
    xhr.addEventListener('abort', () => reject(new DOMException('The upload was cancelled.', 'AbortError')));
    options.signal?.addEventListener('abort', () => xhr.abort());
    const form = new FormData();
    if (options.tags?.trim()) {
      form.append('tags', options.tags.trim());
    }
    if (options.expiresIn !== undefined) {
      form.append('expires_in', String(options.expiresIn));
    }
    form.append('file', file, file instanceof File ? file.name : 'pasted-image');
    xhr.send(form);
  });
}
