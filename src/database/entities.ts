import { ApiKey } from '../modules/api-keys/api-key.entity';
import { Session } from '../modules/auth/session.entity';
import { User } from '../modules/auth/user.entity';
import { Upload } from '../modules/uploads/upload.entity';

/** Every entity, for the CLI and migrations; the app itself registers them per module with forFeature. */
export const ALL_ENTITIES = [User, Session, ApiKey, Upload];
