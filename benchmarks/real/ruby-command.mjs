// Turn CRuby's WASI *reactor* build from npm (@ruby/3.3-wasm-wasi: ruby.debug+stdlib.wasm, which keeps its name
// section) into a WASI *command* module that gridvm can run: gridvm needs `_start`, and links only
// wasi_snapshot_preview1 + gridvm imports.
//
//  - the JS-binding imports (`rb-js-abi-host.*`) become stub functions that trap (`ruby -e` without
//    `require "js"` never calls them); `canonical_abi.resource_*` become identity/no-op functions;
//  - a new `_start`:  _initialize();  argv = WASI args;  ruby-init(argv[0 .. n-2]);
//    r = rb-eval-string-protect(argv[n-1]);  proc_exit(r.state != 0)
//    i.e. run as `ruby.wasm ruby -EUTF-8 -e_=0 'puts 1+1'` (the last argument is the script);
//  - the reactor exports (`_initialize`, `ruby-init`, …) stay; the module keeps its own Asyncify exports
//    (asyncify_start_unwind …): CRuby uses Asyncify for setjmp/longjmp and fibers, which is what gridvm must cope with.
//
// Usage: node benchmarks/real/ruby-command.mjs IN.wasm OUT.wasm
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export async function rubyCommand(inPath, outPath) {
  const binaryen = (await import(require.resolve('binaryen'))).default;
  const m = binaryen.readBinary(new Uint8Array(readFileSync(inPath)));
  binaryen.setDebugInfo(true);
  m.setFeatures(binaryen.Features.MVP | binaryen.Features.MutableGlobals | binaryen.Features.NontrappingFPToInt |
    binaryen.Features.SIMD128 | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt | binaryen.Features.SignExt | binaryen.Features.ReferenceTypes |
    binaryen.Features.Multivalue);
  const exportTarget = (name) => {
    for (let i = 0; i < m.getNumExports(); i++) {
      const e = binaryen.getExportInfo(m.getExportByIndex(i));
      if (e.name === name) return e.value;
    }
    throw new Error(`${inPath}: no export ${name}`);
  };
  const init = exportTarget('_initialize');
  const rubyInit = exportTarget('ruby-init: func(args: list<string>) -> ()');
  const rbEval = exportTarget('rb-eval-string-protect: func(str: string) -> tuple<handle<rb-abi-value>, s32>');
  const need = (n) => {
    if (!m.getFunction(n)) throw new Error(`${inPath}: no function named ${n} (use the build with a name section)`);
    return n;
  };
  const malloc = need('malloc');
  const strlen = need('strlen');

  // replace non-WASI imports by trapping stubs
  const stubs = [];
  for (let i = 0; i < m.getNumFunctions(); i++) {
    const f = binaryen.getFunctionInfo(m.getFunctionByIndex(i));
    if (f.module && f.module !== 'wasi_snapshot_preview1') stubs.push(f);
  }
  for (const f of stubs) {
    m.removeFunction(f.name);
    // canonical_abi resources: handle = representation (rb-eval-string-protect wraps its result in one)
    const body = f.module === 'canonical_abi'
      ? (f.results === binaryen.none ? m.nop() : m.local.get(0, binaryen.i32))
      : m.unreachable();
    m.addFunction(f.name, f.params, f.results, [], body);
  }

  const i32 = binaryen.i32;
  const none = binaryen.none;
  m.addFunctionImport('__rc_args_sizes_get', 'wasi_snapshot_preview1', 'args_sizes_get', binaryen.createType([i32, i32]), i32);
  m.addFunctionImport('__rc_args_get', 'wasi_snapshot_preview1', 'args_get', binaryen.createType([i32, i32]), i32);
  m.addFunctionImport('__rc_proc_exit', 'wasi_snapshot_preview1', 'proc_exit', i32, none);

  // locals: 0 tmp, 1 argc, 2 argv, 3 buf, 4 list, 5 i, 6 s, 7 ret
  const L = (n) => m.local.get(n, i32);
  const set = (n, v) => m.local.set(n, v);
  const load = (p, off = 0) => m.i32.load(off, 4, p);
  const store = (p, v, off = 0) => m.i32.store(off, 4, p, v);
  const call = (f, args, t = i32) => m.call(f, args, t);
  const body = m.block(null, [
    call(init, [], none),
    set(0, call(malloc, [m.i32.const(8)])),
    m.drop(call('__rc_args_sizes_get', [L(0), m.i32.add(L(0), m.i32.const(4))])),
    set(1, load(L(0))),
    m.if(m.i32.lt_u(L(1), m.i32.const(2)), call('__rc_proc_exit', [m.i32.const(2)], none)),
    set(2, call(malloc, [m.i32.shl(m.i32.add(L(1), m.i32.const(1)), m.i32.const(2))])),
    set(3, call(malloc, [m.i32.add(load(L(0), 4), m.i32.const(1))])),
    m.drop(call('__rc_args_get', [L(2), L(3)])),
    set(4, call(malloc, [m.i32.shl(L(1), m.i32.const(3))])),
    set(5, m.i32.const(0)),
    m.block('done', [
      m.loop('next', m.block(null, [
        m.br('done', m.i32.ge_u(L(5), L(1))),
        set(6, load(m.i32.add(L(2), m.i32.shl(L(5), m.i32.const(2))))),
        store(m.i32.add(L(4), m.i32.shl(L(5), m.i32.const(3))), L(6)),
        store(m.i32.add(L(4), m.i32.shl(L(5), m.i32.const(3))), call(strlen, [L(6)]), 4),
        set(5, m.i32.add(L(5), m.i32.const(1))),
        m.br('next'),
      ])),
    ]),
    call(rubyInit, [L(4), m.i32.sub(L(1), m.i32.const(1))], none),
    set(6, m.i32.add(L(4), m.i32.shl(m.i32.sub(L(1), m.i32.const(1)), m.i32.const(3)))),
    set(7, call(rbEval, [load(L(6)), load(L(6), 4)])),
    call('__rc_proc_exit', [m.i32.ne(load(L(7), 4), m.i32.const(0))], none),
  ]);
  m.addFunction('__rc_start', none, none, [i32, i32, i32, i32, i32, i32, i32, i32], body);
  m.addFunctionExport('__rc_start', '_start');
  if (!m.validate()) throw new Error('ruby-command: the generated module does not validate');
  const out = m.emitBinary();
  m.dispose();
  writeFileSync(outPath, out);
  return { stubs: stubs.map((f) => `${f.module}.${f.base}`), bytes: out.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await rubyCommand(process.argv[2], process.argv[3]);
  console.log(`ruby-command: ${r.bytes} bytes, ${r.stubs.length} stubbed imports`);
}
