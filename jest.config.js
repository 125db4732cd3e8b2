/**
 * One jest run: unit specs beside the code; integration, medium (one module on real PostgreSQL), e2e and browser
 * (the website in Debian's Chromium) specs under test/.
 */
module.exports = {
  testEnvironment: 'node',
  rootDir: '.',
  testRegex: ['src/.*\\.spec\\.ts$', 'test/.*\\.(int|e2e|medium|browser)-spec\\.ts$'],
  // web/ is the website (its own build and tsconfig); its code is tested in a browser (test/browser).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/web/'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper: { '^src/(.*)$': '<rootDir>/src/$1' },
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  maxWorkers: 2,
  testTimeout: 60000,
};
