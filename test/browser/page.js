// The browser test page (served by test/browser/browser-worker.test.ts with COOP/COEP headers, so the page is
// cross-origin isolated and the worker has SharedArrayBuffer + Atomics.wait). window.gridvmRun(request) starts a
// fresh Web Worker node (/worker.js = dist/browser/worker.js), fetches the instrumented module (and, to resume, the
// checkpoint files) from the test server, posts the RunRequest and resolves with everything the worker posted.
// Bytes cross page.evaluate as base64.

const toBase64 = (u8) => {
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(s);
};

const concat = (chunks) => {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
};

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${r.statusText}`);
  return new Uint8Array(await r.arrayBuffer());
}

/**
 * @param {{ moduleUrl: string, info: object, args: string[], env: string[], checkpointAtFuel?: number[],
 *           suspend?: boolean, meta?: object, resumeUrls?: string[] }} o
 */
window.gridvmRun = async (o) => {
  const module = await fetchBytes(o.moduleUrl);
  const resume = o.resumeUrls ? await Promise.all(o.resumeUrls.map(fetchBytes)) : undefined;
  const req = {
    type: 'run',
    module,
    info: o.info,
    args: o.args,
    env: o.env,
    ...(resume ? { resume } : {}),
    ...(o.checkpointAtFuel ? { checkpointAtFuel: o.checkpointAtFuel } : {}),
    ...(o.suspend ? { suspend: true } : {}),
    ...(o.meta ? { meta: o.meta } : {}),
  };
  const worker = new Worker('/worker.js', { type: 'module' });
  const t0 = performance.now();
  const stdout = [];
  const stderr = [];
  const checkpoints = [];
  try {
    const done = await new Promise((resolve, reject) => {
      worker.onmessage = (ev) => {
        const m = ev.data;
        if (m.type === 'stdout') stdout.push(m.bytes);
        else if (m.type === 'stderr') stderr.push(m.bytes);
        else if (m.type === 'checkpoint') {
          checkpoints.push({ seq: m.seq, stdoutBytes: m.stdoutBytes, stderrBytes: m.stderrBytes, fuelUsed: m.fuelUsed, bytes: toBase64(m.bytes) });
        } else if (m.type === 'done') resolve(m);
        else if (m.type === 'error') reject(new Error(`worker: ${m.message}`));
        else reject(new Error(`worker posted an unknown message type ${m.type}`));
      };
      worker.onerror = (ev) => {
        ev.preventDefault();
        reject(new Error(`worker failed: ${ev.message || 'error event (script failed to load?)'}`));
      };
      worker.onmessageerror = () => reject(new Error('worker message could not be deserialized'));
      worker.postMessage(req, [module.buffer, ...(resume ?? []).map((b) => b.buffer)]);
    });
    return {
      done,
      wallMs: performance.now() - t0,
      crossOriginIsolated: self.crossOriginIsolated === true,
      stdout: toBase64(concat(stdout)),
      stderr: toBase64(concat(stderr)),
      checkpoints,
    };
  } finally {
    worker.terminate();
  }
};
window.gridvmReady = true;
