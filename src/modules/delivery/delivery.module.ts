import { Module } from '@nestjs/common';
import { StorageModule } from '../storage/storage.module';
import { UploadsModule } from '../uploads/uploads.module';
import { DeliveryCache } from './delivery-cache';
import { ImagesController } from './images.controller';
import { VariantsService } from './variants.service';

/** Serving stored bytes: /images, originals and variants, with a per-instance metadata cache (issue 14). Of uploads it uses only the servable lookup. */
@Module({
  imports: [UploadsModule, StorageModule],
  controllers: [ImagesController],
  providers: [VariantsService, DeliveryCache],
  exports: [VariantsService, DeliveryCache],
})
export class DeliveryModule {}
