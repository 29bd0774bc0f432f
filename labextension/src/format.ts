/**
 * Small text helpers for the panel.
 */

const ANSI_ESCAPE = /\u001b\[[0-9;]*[A-Za-z]/g;

/** How long ago an epoch time in seconds was, as `12 s ago`, `3 min ago` or `2 h ago`. */
export function timeSince(epochSeconds: number, now: number = Date.now()): string {
  const seconds = Math.max(0, Math.round(now / 1000 - epochSeconds));
  if (seconds < 60) {
    return `${seconds} s ago`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ago`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 48) {
    return `${hours} h ago`;
  }
  return `${Math.floor(hours / 24)} d ago`;
}

/** A duration in seconds, as `0.42 s`, `1 min 05 s` or `2 h 03 min`. */
export function duration(seconds: number): string {
  if (seconds < 10) {
    return `${seconds.toFixed(2)} s`;
  }
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) {
    return `${minutes} min ${String(whole % 60).padStart(2, '0')} s`;
  }
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A byte count in binary units, as `512 B`, `12.3 MiB`, `700 MiB` or `1.50 GiB`. */
export function bytes(count: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value < 10 ? 2 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** The first lines of a source text, with a marker when lines were left out. */
export function firstLines(source: string, count: number): string {
  const lines = source.replace(/\s+$/, '').split('\n');
  if (lines.length <= count) {
    return lines.join('\n');
  }
  return [...lines.slice(0, count), `… ${lines.length - count} more lines`].join('\n');
}

/** A traceback without the terminal colour codes IPython puts in it. */
export function plainTraceback(traceback: string): string {
  return traceback.replace(ANSI_ESCAPE, '');
}
