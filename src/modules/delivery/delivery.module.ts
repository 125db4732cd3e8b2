import { Module } from '@nestjs/common';
import { StorageModule } from '../storage/storage.module';
import { UploadsModule } from '../uploads/uploads.module';
import { ImagesController } from './images.controller';

/** Serving stored bytes: /images (variants will live here too). Of uploads it uses only the servable lookup. */
@Module({ imports: [UploadsModule, StorageModule], controllers: [ImagesController] })
export class DeliveryModule {}
