import { context, type Context } from '@opentelemetry/api';

/** One item's outcome inside a batch: its own value or its own error, never its neighbours'. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const failed = <T = never>(error: unknown): Outcome<T> => ({ ok: false, error });

export interface GroupCommitOptions {
  /** Most items one batch takes. */
  maxBatch: number;
  /** Batches running at once; items arriving while all are busy wait for the next one. */
  concurrency: number;
}

interface Waiting<In, Out> {
  item: In;
  /** The submitter's trace context: the batch runs in its first item's, not in whichever callback started it. */
  ctx: Context;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for any step that costs a round trip (a transaction, an RPC): an item submitted
 * while fewer than `concurrency` batches run starts a batch at the end of the current turn of
 * the event loop (setImmediate, so every item the same network read delivered leaves together,
 * and an idle system adds no timer's latency); items arriving while every batch is busy queue and
 * leave together in the next one. Batches grow with the load by themselves, which is how a database amortizes
 * one fsync over many commits and how the Ledger's engine amortizes one transaction over many
 * transfers.
 *
 * `run` answers one Outcome per item, in order; a batch that throws fails every item in it.
 */
export class GroupCommit<In, Out> {
  private readonly queue: Array<Waiting<In, Out>> = [];
  private running = 0;
  private scheduled = false;

  constructor(
    private readonly run: (items: In[]) => Promise<Array<Outcome<Out>>>,
    private readonly opts: GroupCommitOptions,
  ) {}

  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ item, ctx: context.active(), resolve, reject });
      this.schedule();
    });
  }

  /** Items waiting or in a running batch's hands, for metrics and tests. */
  get pending(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.opts.concurrency) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.opts.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      this.running++;
      void this.execute(batch).finally(() => {
        this.running--;
        this.schedule();
      });
    }
  }

  private async execute(batch: Array<Waiting<In, Out>>): Promise<void> {
    let outcomes: Array<Outcome<Out>>;
    try {
      outcomes = await context.with(batch[0]!.ctx, () => this.run(batch.map((w) => w.item)));
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => {
      const o = outcomes[i];
      if (!o) w.reject(new Error(`group commit: the batch returned ${outcomes.length} outcomes for ${batch.length} items`));
      else if (o.ok) w.resolve(o.value);
      else w.reject(o.error);
    });
  }
}
