import { Errno, KernelError } from '../errors.js';

/** The errno for a path that would leave its base directory (wasmtime / wasi-filesystem: not-permitted). */
export const ESCAPE_ERRNO = Errno.PERM;

/** Split a guest path into components, rejecting absolute paths and NULs. An empty path is ENOENT. */
export function splitGuestPath(path: string): { comps: string[]; trailingSlash: boolean } {
  if (path.length === 0) throw new KernelError(Errno.NOENT, 'empty path');
  if (path.includes('\0')) throw new KernelError(Errno.INVAL, 'path contains a NUL byte');
  if (path.startsWith('/')) throw new KernelError(ESCAPE_ERRNO, `absolute path "${path}" is not allowed: paths are relative to a directory fd`);
  const comps = path.split('/').filter((c) => c !== '' && c !== '.');
  return { comps, trailingSlash: path.endsWith('/') || path.endsWith('/.') || path === '.' };
}

export function joinPath(comps: readonly string[]): string {
  return comps.join('/');
}

export function splitPath(path: string): string[] {
  return path === '' ? [] : path.split('/');
}

/** Join a mount-relative path to a name. */
export function childPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** Normalise a mount's guest name: '/data/' -> '/data'; keeps '/' and '.'. */
export function normaliseGuestName(name: string): string {
  if (name.length > 1) name = name.replace(/\/+$/, '');
  return name === '' ? '.' : name;
}
