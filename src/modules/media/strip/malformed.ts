import { AppError } from '../../../common/errors/app-error';

/** A container that does not parse: the bytes claim a supported type but are corrupt (API.md: processing_failed). */
export function malformed(format: string, detail: string): AppError {
  return new AppError('processing_failed', `The ${format} file is corrupt: ${detail}.`);
}
