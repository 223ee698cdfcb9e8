/** Download progress on the terminal: a bar redrawn in place on a TTY, a line every 10 s otherwise. */
import type { DownloadProgress } from '../model/download.js';
import { formatDuration } from './options.js';

/** `176.3 MiB`, `512 KiB`, `900 B`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${Math.round(bytes / 1024)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** `sam2.1_hiera_small.pt 45.2 MiB / 176.3 MiB (26%), 12.3 MiB/s, ETA 11s`. */
export function formatDownloadProgress(p: DownloadProgress): string {
  const size =
    p.total === null
      ? formatBytes(p.received)
      : `${formatBytes(p.received)} / ${formatBytes(p.total)} (${Math.floor((100 * p.received) / Math.max(1, p.total))}%)`;
  const eta = p.done ? 'done' : `ETA ${p.etaSeconds === null ? '?' : formatDuration(p.etaSeconds)}`;
  const resumed = p.resumedFrom > 0 ? `, resumed at ${formatBytes(p.resumedFrom)}` : '';
  return `${p.file} ${size}, ${formatBytes(p.bytesPerSecond)}/s, ${eta}${resumed}`;
}

/** Prints progress to `stream`; plain lines at most every `intervalMs` when it is not a TTY. */
export function downloadProgressPrinter(
  stream: NodeJS.WritableStream & { isTTY?: boolean },
  intervalMs = 10_000,
) {
  let lastLine = -Infinity;
  let open = false;
  return {
    update(p: DownloadProgress) {
      if (stream.isTTY) {
        const width = 24;
        const filled = p.total ? Math.round((width * p.received) / p.total) : 0;
        const bar = p.total ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
        stream.write(`\r${bar}${formatDownloadProgress(p)}\x1b[K`);
        open = !p.done;
        if (p.done) stream.write('\n');
        return;
      }
      if (p.done || Date.now() - lastLine >= intervalMs) {
        stream.write(`${formatDownloadProgress(p)}\n`);
        lastLine = Date.now();
      }
    },
    /** Ends an open bar line (after a failure). */
    end() {
      if (open) stream.write('\n');
      open = false;
    },
  };
}
