import { Module } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { LocalStorageDriver } from './local.driver';
import { S3StorageDriver } from './s3.driver';
import { StorageDriver } from './storage-driver';

/** The driver STORAGE_DRIVER names: local disk (default) or an S3-compatible store. */
export function createStorageDriver(config: AppConfig, driver = config.storageDriver): StorageDriver {
  return driver === 's3' ? new S3StorageDriver(config.s3) : new LocalStorageDriver(config);
}

/** Where image bytes live: bytes and keys only, nothing about users or uploads. */
@Module({
  providers: [
    {
      provide: StorageDriver,
      useFactory: (config: AppConfig) => createStorageDriver(config),
      inject: [AppConfig],
    },
  ],
  exports: [StorageDriver],
})
export class StorageModule {}
