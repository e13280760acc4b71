/**
 * Entry of the watchdog process (see watchdog.ts); started detached by the process that started
 * or adopted the embedded server, with its arguments as one JSON string.
 */
import { parseWatchdogArgs, watch } from './watchdog.js';

const say = (line: string) => console.log(`${new Date().toISOString()} watchdog ${process.pid}: ${line}`);

watch(parseWatchdogArgs(process.argv[2]), say).then(
  () => process.exit(0),
  (error: unknown) => {
    say(`failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
