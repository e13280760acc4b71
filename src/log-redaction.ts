/**
 * Keeps key material and ciphertext out of MikroORM's debug log. MikroORM 6 inlines every
 * parameter into the SQL text it runs and logs (with `debug: true`, the `query-params` namespace),
 * so its own single-row updates of `records` and every insert or update of `vaults` would print
 * ciphertext, wrapped keys and salts as bytea literals (`E'\\x…'`). The logger below rewrites each
 * such literal to `<bytea N bytes>`, and every binary parameter handed to the logger likewise,
 * before the logger MikroORM would otherwise use sees the line. The statements themselves are
 * unchanged.
 *
 * @module
 */
import { DefaultLogger, type LogContext, type Logger, type LoggerNamespace, type LoggerOptions } from '@mikro-orm/core';

/** A bytea literal as PostgreSqlPlatform.quoteValue writes it (`E'\\x0a1b'`), or without the `E`. */
const BYTEA_LITERAL = /E?'\\{1,2}x([0-9a-fA-F]*)'/g;

/**
 * Replaces every bytea literal in `text` with `<bytea N bytes>`.
 *
 * @example
 * ```ts
 * redactBytea(`update "vaults" set "salt" = E'\\\\x0a1b' where …`); // update "vaults" set "salt" = <bytea 2 bytes> where …
 * ```
 */
export function redactBytea(text: string): string {
  return text.replace(BYTEA_LITERAL, (_literal, hex: string) => `<bytea ${hex.length / 2} bytes>`);
}

function redactParam(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return `<bytea ${value.byteLength} bytes>`;
  if (Array.isArray(value)) return value.map(redactParam);
  if (typeof value === 'string') return redactBytea(value);
  return value;
}

function redactContext(context: LogContext | undefined): LogContext | undefined {
  if (context === undefined) return undefined;
  const redacted: LogContext = { ...context };
  if (typeof context.query === 'string') redacted.query = redactBytea(context.query);
  if (Array.isArray(context.params)) redacted.params = context.params.map(redactParam);
  return redacted;
}

/** A MikroORM logger that redacts binary values, then hands everything to another logger. */
class RedactingLogger implements Logger {
  constructor(private readonly inner: Logger) {}

  log(namespace: LoggerNamespace | (string & {}), message: string, context?: LogContext): void {
    this.inner.log(namespace, redactBytea(message), redactContext(context));
  }

  error(namespace: LoggerNamespace | (string & {}), message: string, context?: LogContext): void {
    this.inner.error(namespace, redactBytea(message), redactContext(context));
  }

  warn(namespace: LoggerNamespace | (string & {}), message: string, context?: LogContext): void {
    this.inner.warn(namespace, redactBytea(message), redactContext(context));
  }

  logQuery(context: LogContext): void {
    // Before the inner logger builds its line (and a highlighter splits the literals with colours).
    this.inner.logQuery(redactContext(context) as LogContext);
  }

  setDebugMode(debugMode: boolean | LoggerNamespace[]): void {
    this.inner.setDebugMode(debugMode);
  }

  isEnabled(namespace: LoggerNamespace, context?: LogContext): boolean {
    return this.inner.isEnabled(namespace, context);
  }
}

/**
 * A MikroORM `loggerFactory` that redacts bytea values from everything logged, wrapping `inner`
 * (MikroORM's DefaultLogger unless an application passes its own factory). `createConfig` sets it,
 * wrapping any `loggerFactory` given in its overrides.
 *
 * @example
 * ```ts
 * MikroORM.init({ ...options, loggerFactory: redactingLoggerFactory(myPinoLoggerFactory) });
 * ```
 */
export function redactingLoggerFactory(inner: (options: LoggerOptions) => Logger = (options) => DefaultLogger.create(options)): (options: LoggerOptions) => Logger {
  return (options) => new RedactingLogger(inner(options));
}
