import { Module } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { LocalStorageDriver } from './local.driver';
import { StorageDriver } from './storage-driver';

/**
 * The driver STORAGE_DRIVER names: local disk (default) or an S3-compatible store. The S3 driver (and the AWS SDK
 * under it) is loaded only when asked for.
 */
export async function createStorageDriver(
  config: AppConfig,
  driver = config.storageDriver,
): Promise<StorageDriver> {
  if (driver === 's3') {
    const { S3StorageDriver } = await import('./s3.driver');
    return new S3StorageDriver(config.s3);
  }
  return new LocalStorageDriver(config);
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
