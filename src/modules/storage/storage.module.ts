import { Module } from '@nestjs/common';
import { LocalStorageDriver } from './local.driver';
import { StorageDriver } from './storage-driver';

/** Where image bytes live: bytes and keys only, nothing about users or uploads (an S3 driver plugs in here). */
@Module({
  providers: [{ provide: StorageDriver, useClass: LocalStorageDriver }],
  exports: [StorageDriver],
})
export class StorageModule {}
