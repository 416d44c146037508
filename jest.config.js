/**
 * Two projects: `unit` (no external processes) and `k8s` (against a real etcd + kube-apiserver +
 * kube-controller-manager that test/k8s/global-setup.ts starts once for the run; files end in `.k8s.test.ts`).
 * ESM TypeScript goes through @swc/jest; type-checking is `tsc --noEmit` in `npm test`.
 */
const common = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } }],
  },
  // Sources import siblings as `./x.js` (NodeNext); map those back to the .ts files.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
};

export default {
  // A global option: inside `projects` jest ignores it.
  testTimeout: 30_000,
  projects: [
    { ...common, displayName: 'unit', roots: ['<rootDir>/test'], testMatch: ['**/*.test.ts'], testPathIgnorePatterns: ['\\.k8s\\.test\\.ts$'] },
    {
      ...common,
      displayName: 'k8s',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.k8s.test.ts'],
      globalSetup: '<rootDir>/test/k8s/global-setup.ts',
      globalTeardown: '<rootDir>/test/k8s/global-teardown.ts',
    },
  ],
};
