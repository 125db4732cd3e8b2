export type UserRole = 'user' | 'admin';
