import { Module } from '@nestjs/common';
import { StorageModule } from '../storage/storage.module';
import { UploadsModule } from '../uploads/uploads.module';
import { ImagesController } from './images.controller';
import { VariantsService } from './variants.service';

/** Serving stored bytes: /images (variants will live here too). Of uploads it uses only the servable lookup. */
@Module({
  imports: [UploadsModule, StorageModule],
  controllers: [ImagesController],
  providers: [VariantsService],
  exports: [VariantsService],
})
export class DeliveryModule {}
