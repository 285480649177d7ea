// The DCGAN generator in the browser: onnxruntime-web (WebAssembly) runs generator.onnx.
//
// generator.onnx takes z (float32 [batch, latent_dim], a draw of N(0, I)) and gives images
// (float32 [batch, height, width, channels] in [-1, 1]); generator.json describes it.
// z is drawn here: mulberry32 (a seeded 32-bit generator) feeds Box-Muller.
// window.dcgan exposes the state, for tests and the curious: seed, lastZ (the grid's z),
// walkZ (the walk image's z), renders (a counter), ready, error, standardNormal(count, seed).
(function () {
  "use strict";
  const GRID = 4; // a 4x4 grid of samples
  const STRIP = 8; // frames of the walk shown under it
  const state = (window.dcgan = { ready: false, error: null, renders: 0, seed: 0, from: 0, to: 1, t: 0 });
  const $ = (id) => document.getElementById(id);

  function mulberry32(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296; // in [0, 1)
    };
  }

  // count draws of N(0, 1) from a seed (Box-Muller: two normals per pair of uniforms).
  function standardNormal(count, seed) {
    const random = mulberry32(seed);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i += 2) {
      const u1 = 1 - random(); // in (0, 1]: log(u1) is finite
      const u2 = random();
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
    }
    return out;
  }

  // Spherical interpolation from a to b (as dcgan_keras.experiments.latent.slerp).
  function slerp(a, b, t) {
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    const norms = Math.sqrt(na) * Math.sqrt(nb);
    const omega = Math.acos(Math.min(1, Math.max(-1, norms > 0 ? dot / norms : 1)));
    const sin = Math.sin(omega);
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) {
      out[i] = sin < 1e-6 ? (1 - t) * a[i] + t * b[i]
        : (Math.sin((1 - t) * omega) / sin) * a[i] + (Math.sin(t * omega) / sin) * b[i];
    }
    return out;
  }

  state.standardNormal = standardNormal; // for tests of the draw

  let session, info, latentDim, height, width, channels;
  let busy = Promise.resolve();

  async function generate(z, count) {
    const tensor = new ort.Tensor("float32", z, [count, latentDim]);
    const result = await session.run({ z: tensor });
    return result.images.data; // float32, NHWC, in [-1, 1]
  }

  // Draws image `index` of an NHWC batch at (x, y) of a canvas context, as 8-bit RGBA pixels.
  function draw(context, images, index, x, y) {
    const pixels = context.createImageData(width, height);
    const base = index * height * width * channels;
    for (let p = 0; p < height * width; p++) {
      for (let c = 0; c < 3; c++) {
        const v = images[base + p * channels + (channels === 1 ? 0 : c)];
        pixels.data[p * 4 + c] = Math.min(255, Math.max(0, Math.round((v + 1) * 127.5)));
      }
      pixels.data[p * 4 + 3] = 255;
    }
    context.putImageData(pixels, x, y);
  }

  function sampleZ(index) {
    return state.lastZ.slice(index * latentDim, (index + 1) * latentDim);
  }

  async function renderGrid() {
    $("seed").textContent = state.seed;
    state.lastZ = standardNormal(GRID * GRID * latentDim, state.seed);
    const images = await generate(state.lastZ, GRID * GRID);
    const context = $("grid").getContext("2d");
    for (let i = 0; i < GRID * GRID; i++) draw(context, images, i, (i % GRID) * width, Math.floor(i / GRID) * height);
    await renderStrip();
    await renderWalk();
  }

  async function renderStrip() {
    const a = sampleZ(state.from), b = sampleZ(state.to);
    const z = new Float32Array(STRIP * latentDim);
    for (let k = 0; k < STRIP; k++) z.set(slerp(a, b, k / (STRIP - 1)), k * latentDim);
    const images = await generate(z, STRIP);
    const context = $("strip").getContext("2d");
    for (let k = 0; k < STRIP; k++) draw(context, images, k, k * width, 0);
    $("walk-from").textContent = state.from + 1;
    $("walk-to").textContent = state.to + 1;
  }

  async function renderWalk() {
    state.walkZ = slerp(sampleZ(state.from), sampleZ(state.to), state.t);
    const images = await generate(state.walkZ, 1);
    draw($("walk").getContext("2d"), images, 0, 0, 0);
    $("t").textContent = "t = " + state.t.toFixed(2);
    state.renders += 1;
  }

  // Runs one render after another, never two at once (a session runs one call at a time).
  function queue(render) {
    busy = busy.then(render).catch(fail);
    return busy;
  }

  function fail(error) {
    state.error = String(error && error.message ? error.message : error);
    $("status").textContent = "Error: " + state.error;
    $("status").className = "error";
  }

  async function main() {
    if (typeof ort === "undefined") {
      const src = document.querySelector("script[data-ort]").src;
      throw new Error("onnxruntime-web did not load from " + src + " (offline, or a wrong --ort-url?)");
    }
    const src = document.querySelector("script[data-ort]").src;
    ort.env.wasm.wasmPaths = src.slice(0, src.lastIndexOf("/") + 1);
    ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain file server does not give
    info = await (await fetch("generator.json")).json();
    latentDim = info.input.shape[1];
    [height, width, channels] = info.output.shape.slice(1);
    session = await ort.InferenceSession.create("generator.onnx", { executionProviders: ["wasm"] });
    $("grid").width = GRID * width; $("grid").height = GRID * height;
    $("walk").width = width; $("walk").height = height;
    $("strip").width = STRIP * width; $("strip").height = height;
    $("strip").style.height = (384 / STRIP) * (height / width) + "px";
    const fromUrl = parseInt(new URLSearchParams(location.search).get("seed"), 10);
    state.seed = Number.isFinite(fromUrl) ? fromUrl >>> 0 : 0;

    $("new-seed").addEventListener("click", () => {
      state.seed = (state.seed + 1) >>> 0;
      queue(renderGrid);
    });
    $("slider").addEventListener("input", () => {
      state.t = $("slider").value / 100;
      queue(renderWalk);
    });
    $("grid").addEventListener("click", (event) => {
      const box = $("grid").getBoundingClientRect();
      const column = Math.floor(((event.clientX - box.left) / box.width) * GRID);
      const row = Math.floor(((event.clientY - box.top) / box.height) * GRID);
      const index = Math.min(GRID * GRID - 1, Math.max(0, row * GRID + column));
      if (event.shiftKey) state.to = index; else state.from = index;
      queue(async () => { await renderStrip(); await renderWalk(); });
    });
    $("download").addEventListener("click", () => {
      const link = document.createElement("a");
      link.download = `dcgan-seed${state.seed}-${state.from + 1}-to-${state.to + 1}-t${state.t.toFixed(2)}.png`;
      link.href = $("walk").toDataURL("image/png");
      link.click();
    });

    await queue(renderGrid);
    if (state.error) return;
    for (const id of ["new-seed", "slider", "download"]) $(id).disabled = false;
    $("status").textContent = `${info.output.shape.slice(1).join("x")} images from z of size ${latentDim}; ` +
      `onnxruntime-web ${ort.env.versions ? ort.env.versions.web || "" : ""} (wasm).`;
    state.ready = true;
  }

  main().catch(fail);
})();
