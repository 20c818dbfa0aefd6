import type { ChangeFeed, ChangeListener, SubscribeOptions, Subscription } from './log.js';

interface Listener {
  readonly onChanges: ChangeListener;
  readonly onGap: (() => void) | undefined;
}

/**
 * One subscription to a heads stream shared by every subscriber of a process (the hub and the
 * read cache): with Kafka each subscription is a consumer reading the whole topic.
 */
export class SharedChangeFeed implements ChangeFeed {
  private readonly listeners = new Set<Listener>();
  private upstream: Promise<Subscription> | null = null;

  constructor(private readonly feed: ChangeFeed) {}

  publish(...args: Parameters<ChangeFeed['publish']>): Promise<void> {
    return this.feed.publish(...args);
  }

  async subscribe(
    onChanges: ChangeListener,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    const upstream = (this.upstream ??= this.feed
      .subscribe((changes, positions) => this.deliver(changes, positions), {
        onGap: () => {
          for (const listener of [...this.listeners]) listener.onGap?.();
        },
      })
      .catch((err: unknown) => {
        this.upstream = null;
        throw err;
      }));
    const subscription = await upstream;
    const listener: Listener = { onChanges, onGap: options.onGap };
    this.listeners.add(listener);
    return {
      close: async () => {
        if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
        this.upstream = null;
        await subscription.close();
      },
      isActive: () => this.listeners.has(listener) && (subscription.isActive?.() ?? true),
    };
  }

  /** Closes the shared subscription, not the feed underneath (its owner closes that). */
  async close(): Promise<void> {
    this.listeners.clear();
    const upstream = this.upstream;
    this.upstream = null;
    if (upstream) await (await upstream).close();
  }

  private deliver(...args: Parameters<ChangeListener>): void {
    let failure: Error | null = null;
    for (const listener of [...this.listeners]) {
      try {
        listener.onChanges(...args);
      } catch (err) {
        failure ??=
          err instanceof Error ? err : new Error('a heads listener failed', { cause: err });
      }
    }
    if (failure !== null) throw failure;
  }
}
