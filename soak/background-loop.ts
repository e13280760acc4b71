/**
 * A loop that runs beside the devices until stopped: the purger and the restarter are two.
 * Subclasses say what the loop does in `run()`, checking `running` between turns.
 */
export abstract class BackgroundLoop {
  /** False once `stop()` was called (or the loop decided to end). */
  protected running = false;
  private loop: Promise<void> | null = null;

  /** Starts the loop. */
  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Stops the loop and waits for the turn in progress to finish. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** The loop itself; it should return soon after `running` turns false. */
  protected abstract run(): Promise<void>;
}
