// Minimal WebAssembly + TextEncoder declarations for the platform-free layers (vm/, kernel/), which compile
// without the DOM or Node type libraries so that neither can be used there by accident.
declare namespace WebAssembly {
  type ImportValue = Function | Global | Memory | Table | number;
  type Imports = Record<string, Record<string, ImportValue>>;
  type ExportValue = Function | Global | Memory | Table;
  type Exports = Record<string, ExportValue>;
  type ValueType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'externref' | 'anyfunc';
  interface ModuleImportDescriptor { module: string; name: string; kind: 'function' | 'global' | 'memory' | 'table' | 'tag' }
  interface ModuleExportDescriptor { name: string; kind: 'function' | 'global' | 'memory' | 'table' | 'tag' }
  class Module {
    constructor(bytes: BufferSource);
    static imports(m: Module): ModuleImportDescriptor[];
    static exports(m: Module): ModuleExportDescriptor[];
    static customSections(m: Module, name: string): ArrayBuffer[];
  }
  class Instance {
    constructor(m: Module, imports?: Imports);
    readonly exports: Exports;
  }
  interface MemoryDescriptor { initial: number; maximum?: number; shared?: boolean }
  class Memory {
    constructor(d: MemoryDescriptor);
    readonly buffer: ArrayBuffer;
    grow(delta: number): number;
  }
  interface GlobalDescriptor { value: ValueType; mutable?: boolean }
  class Global {
    constructor(d: GlobalDescriptor, v?: unknown);
    value: any;
  }
  class Table {
    readonly length: number;
  }
  class CompileError extends Error {}
  class LinkError extends Error {}
  class RuntimeError extends Error {}
  function validate(bytes: BufferSource): boolean;
  function compile(bytes: BufferSource): Promise<Module>;
  function instantiate(m: Module, imports?: Imports): Promise<Instance>;
}
type BufferSource = ArrayBufferView | ArrayBuffer;
declare class TextEncoder { encode(s?: string): Uint8Array; encodeInto(s: string, d: Uint8Array): { read: number; written: number } }
declare class TextDecoder { constructor(label?: string, opts?: { fatal?: boolean }); decode(b?: BufferSource, o?: { stream?: boolean }): string }
declare const console: { log(...a: unknown[]): void; warn(...a: unknown[]): void; error(...a: unknown[]): void };
declare const crypto: {
  subtle: { digest(alg: 'SHA-256', data: BufferSource): Promise<ArrayBuffer> };
  getRandomValues<T extends ArrayBufferView>(a: T): T;
};
declare const performance: { now(): number };
