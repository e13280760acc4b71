/**
 * Builds the bookmark page (web/) into dist/web, which `npm run serve` ships. The page reuses
 * examples/client-crypto.ts as it is; its `node:crypto` import becomes the browser's WebCrypto.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  resolve: { alias: { 'node:crypto': fileURLToPath(new URL('./node-crypto-shim.ts', import.meta.url)) } },
  build: { outDir: fileURLToPath(new URL('../dist/web', import.meta.url)), emptyOutDir: true },
});
