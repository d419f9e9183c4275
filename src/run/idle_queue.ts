/**
 * The idle warm instances of one module, oldest first: the next tenant gets the oldest one that
 * is ready, which the reset thread has had the longest to reset (see
 * `PoolingOptions.backgroundResets`).
 *
 * @module
 */

/** A queue that also gives up an element near its front. */
export class IdleQueue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** How many wait. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Adds `item` as the youngest. */
  push(item: T): void {
    this.#items.push(item);
  }

  /** The item `i` places from the oldest. */
  at(i: number): T {
    if (i < 0 || i >= this.length) throw new RangeError(`no idle item ${i} of ${this.length}`);
    return this.#items[this.#head + i]!;
  }

  /** Takes out the item `i` places from the oldest; the older ones keep their order. */
  take(i: number): T {
    const item = this.at(i);
    const items = this.#items;
    for (let at = this.#head + i; at > this.#head; at--) items[at] = items[at - 1];
    items[this.#head] = undefined;
    this.#head += 1;
    if (this.#head === items.length) {
      items.length = 0;
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > items.length) {
      items.splice(0, this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Every item, oldest first. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i]!;
  }
}
