/** The browser's WebCrypto under the name examples/client-crypto.ts imports from node:crypto. */
export const webcrypto = globalThis.crypto;
