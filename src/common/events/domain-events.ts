import { Injectable } from '@nestjs/common';
import { EventEmitter } from 'node:events';

/** Domain events other modules react to (audit entries, …), so the emitter never imports the listener. */
export interface DomainEventMap {
  'upload.rejected': {
    userId: string;
    keyId: string | null;
    keyPrefix: string | null;
    sha256: string;
    scores: Record<string, number> | null;
    ip: string;
    userAgent: string | null;
    /** For the log line when the audit entry can't be written. */
    requestId: string;
  };
}

@Injectable()
export class DomainEvents {
  private readonly emitter = new EventEmitter();

  emit<K extends keyof DomainEventMap>(name: K, payload: DomainEventMap[K]): void {
    this.emitter.emit(name, payload);
  }

  on<K extends keyof DomainEventMap>(name: K, listener: (payload: DomainEventMap[K]) => void): () => void {
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }
}
