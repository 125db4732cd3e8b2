import { Injectable } from '@nestjs/common';
import { type ProcessPart, type ProcessRole, roleStarts } from './process-role';

/** The role of this process, injected where something starts in some roles only (see process-role.ts). */
@Injectable()
export class ProcessRoleService {
  constructor(readonly role: ProcessRole) {}

  starts(part: ProcessPart): boolean {
    return roleStarts(this.role, part);
  }
}
