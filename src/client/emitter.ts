/** A map from event name to its listener's signature. */
export type Listeners<L> = { [K in keyof L]: (...args: never[]) => void };

/** Typed callbacks: `on` returns the function that removes the listener. */
export class Emitter<L extends Listeners<L>> {
  private readonly listeners = new Map<keyof L, Set<L[keyof L]>>();

  on<K extends keyof L>(name: K, listener: L[K]): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => this.off(name, listener);
  }

  off<K extends keyof L>(name: K, listener: L[K]): void {
    this.listeners.get(name)?.delete(listener);
  }

  emit<K extends keyof L>(name: K, ...args: Parameters<L[K]>): void {
    for (const listener of [...(this.listeners.get(name) ?? [])]) {
      try {
        (listener as (...a: Parameters<L[K]>) => void)(...args);
      } catch (err) {
        // A throwing listener must not stop the others or the client; surface it asynchronously.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
