import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { UploadsModule } from '../uploads/uploads.module';
import { AdminAuditController } from './admin-audit.controller';
import { AdminUploadsController } from './admin-uploads.controller';
import { AdminUsersController } from './admin-users.controller';
import { AdminService } from './admin.service';

@Module({
  imports: [AuthModule, UploadsModule],
  controllers: [AdminUsersController, AdminUploadsController, AdminAuditController],
  providers: [AdminService],
})
export class AdminModule {}
