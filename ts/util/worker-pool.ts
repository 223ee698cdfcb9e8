/**
 * A fixed set of worker threads running one module's task: requests are queued and each idle
 * worker takes the next one. A worker that crashes fails the request it had and is replaced.
 * The worker module calls {@link serveRequests} with its task.
 */
import { parentPort, Worker } from 'node:worker_threads';

/** What travels to a worker: the request and the id its reply will carry. */
interface Envelope<Request> {
  id: number;
  request: Request;
}

/** What a worker answers: the reply, or the message of what the task threw. */
type ReplyEnvelope<Reply> = { id: number; reply: Reply } | { id: number; error: string };

/** The task a worker module serves: a reply and the buffers to transfer (not copy) with it. */
export type Task<Request, Reply> = (
  request: Request,
) => Promise<{ reply: Reply; transfer: ArrayBuffer[] }>;

/** Answers the pool's requests with `task` in this worker thread. */
export function serveRequests<Request, Reply>(task: Task<Request, Reply>): void {
  const port = parentPort;
  if (!port) throw new Error('a worker module must run in a worker thread');
  const answer = async ({ id, request }: Envelope<Request>): Promise<void> => {
    let reply: ReplyEnvelope<Reply>;
    let transfer: ArrayBuffer[] = [];
    try {
      const done = await task(request);
      reply = { id, reply: done.reply };
      transfer = done.transfer;
    } catch (err) {
      reply = { id, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply, transfer);
  };
  // answer() turns the task's failure into a reply; nothing is left to await here.
  port.on('message', (envelope: Envelope<Request>) => void answer(envelope));
}

/**
 * The URL of a worker module next to `importMeta`'s: `name`.ts under the test runner (which
 * runs the TypeScript sources), `name`.js once built.
 */
export function siblingWorkerUrl(importMetaUrl: string, name: string): URL {
  return new URL(`./${name}${importMetaUrl.endsWith('.ts') ? '.ts' : '.js'}`, importMetaUrl);
}

export class WorkerPool<Request, Reply> {
  private readonly all: Worker[] = [];
  /** The requests each worker is serving. */
  private readonly running = new Map<Worker, Set<number>>();
  private readonly queue: Array<{ envelope: Envelope<Request>; transfer: ArrayBuffer[] }> = [];
  private readonly pending = new Map<
    number,
    { resolve: (reply: Reply) => void; reject: (error: Error) => void }
  >();
  private nextId = 0;
  private closed = false;

  /**
   * Starts `size` threads running `moduleUrl` (which calls {@link serveRequests}), each given up
   * to `perWorker` requests at once: more than one where a task mostly awaits I/O or libuv work.
   */
  constructor(
    private readonly moduleUrl: URL,
    readonly size: number,
    private readonly perWorker = 1,
  ) {
    for (let i = 0; i < size; i++) this.spawn();
  }

  /** Runs one request; the buffers in `transfer` move to the worker and are unusable here. */
  run(request: Request, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.queue.push({ envelope: { id, request }, transfer });
      this.dispatch();
    });
  }

  /**
   * Milliseconds the threads' event loops have been busy (not waiting) since they started: their
   * share of the host's work, start-up included (threads that crashed are not counted).
   */
  busyMs(): number {
    return this.all.reduce(
      (sum, worker) => sum + worker.performance.eventLoopUtilization().active,
      0,
    );
  }

  /** Stops the threads; requests not answered yet are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { reject } of this.pending.values()) reject(new Error('worker pool closed'));
    this.pending.clear();
    await Promise.all(this.all.map((worker) => worker.terminate()));
  }

  private spawn(): void {
    const worker = new Worker(this.moduleUrl);
    const serving = new Set<number>();
    worker.on('message', (answer: ReplyEnvelope<Reply>) => {
      serving.delete(answer.id);
      const task = this.pending.get(answer.id);
      this.pending.delete(answer.id);
      if ('error' in answer) task?.reject(new Error(answer.error));
      else task?.resolve(answer.reply);
      this.dispatch();
    });
    worker.on('error', (err) => {
      // A crashed worker fails its requests and is replaced; the caller decides what that means.
      for (const id of serving) {
        this.pending.get(id)?.reject(err);
        this.pending.delete(id);
      }
      this.running.delete(worker);
      this.all.splice(this.all.indexOf(worker), 1);
      if (!this.closed) this.spawn();
    });
    this.all.push(worker);
    this.running.set(worker, serving);
    this.dispatch();
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      // The least busy worker that can take one more.
      let chosen: Worker | undefined;
      for (const worker of this.all) {
        const load = this.running.get(worker)!.size;
        if (load < this.perWorker && (!chosen || load < this.running.get(chosen)!.size))
          chosen = worker;
      }
      if (!chosen) return;
      const { envelope, transfer } = this.queue.shift()!;
      this.running.get(chosen)!.add(envelope.id);
      chosen.postMessage(envelope, transfer);
    }
  }
}
