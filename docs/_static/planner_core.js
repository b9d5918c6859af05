/* The planner page's computations (docs/planner.html; the page itself is planner.js): the
   Step Law calculator with posterior intervals and the loss plateau, from the draws in
   _static/planner.json that `bayes-steplaw export-web` writes (bayes_steplaw/web.py).

   Each computation is the Python one, step for step, on the same draws:
   - predict (bayes_steplaw/bayes/law.py: Prediction): ln lr = a + b·x + c·y per draw, with
     x = ln N − log_n0, y = ln D − log_d0; the median and the HDI of the sorted log draws
     (posterior.py: sorted_quantile, hdi_bounds), mapped back with exp;
   - plateau_probability (bayes/bowl.py): per draw, the ln-lr interval where q(x, y) <= tol
     (lr_intervals), counted at each point; the recommendation minimises the mean of q;
   - the input grammar and messages of the CLI (cli/_common.py: parse_quantity) and Python's
     number formats, so that the page prints what the CLI prints.
   Plain JavaScript, no library, no DOM here: nothing to build, nothing fetched. */
"use strict";

window.PlannerCore = (() => {
  const BIG = 1.0e3; // bowl.py: BIG, the ln-lr stand-in for ±infinity

  // ------------------------------------------------------------------ input grammar
  // bayes_steplaw/cli/_common.py: parse_quantity (same pattern, suffixes and messages)
  const SUFFIX = { "": 1.0, K: 1e3, M: 1e6, B: 1e9, G: 1e9, T: 1e12 };
  const QUANTITY = /^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGT]?)\s*$/i;
  const EXAMPLES = { N: "7e9 or 7B", D: "1.4e12 or 1.4T", lr: "3e-4", batch: "4M or 4194304" };
  const FRACTION = /^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(%?)\s*$/;

  class InputError extends Error {
    constructor(field, message) {
      super(message);
      this.field = field;
    }
  }

  /** Python's repr() of a string: messages quote the input exactly as the CLI does. */
  function pyRepr(text) {
    const s = String(text);
    const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
    let out = "";
    for (const ch of s) {
      const code = ch.codePointAt(0);
      if (ch === "\\") out += "\\\\";
      else if (ch === quote) out += "\\" + ch;
      else if (ch === "\n") out += "\\n";
      else if (ch === "\r") out += "\\r";
      else if (ch === "\t") out += "\\t";
      else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
      else out += ch;
    }
    return quote + out + quote;
  }

  const pyList = (items) => "[" + items.map(pyRepr).join(", ") + "]";

  function parseQuantity(text, name, field, examples = EXAMPLES[name] || "7e9, 7B or 1.4T") {
    const m = QUANTITY.exec(String(text));
    if (!m) {
      throw new InputError(
        field,
        `${name} must be a positive number such as ${examples}; got ${pyRepr(text)}`,
      );
    }
    const value = Number(m[1]) * SUFFIX[m[2].toUpperCase()];
    if (!Number.isFinite(value) || value <= 0) {
      throw new InputError(field, `${name} must be a positive finite number; got ${pyRepr(text)}`);
    }
    return value;
  }

  /** 0.9 or 90%; NaN when the text is neither. */
  function parseFraction(text) {
    const m = FRACTION.exec(String(text));
    if (!m) return NaN;
    return Number(m[1]) / (m[2] ? 100 : 1);
  }

  function parseProb(text) {
    const p = parseFraction(text);
    if (!(p > 0 && p < 1)) {
      throw new InputError(
        "prob",
        `interval mass (prob) must be between 0 and 1 (exclusive), such as 0.9 or 90%; got ${pyRepr(text)}`,
      );
    }
    return p;
  }

  function parseTol(text) {
    const t = parseFraction(text);
    if (!(t > 0 && t < 1)) {
      throw new InputError(
        "tol",
        `loss tolerance (tol) must be a positive relative loss below 1 (e.g. 0.0025 or 0.25%); got ${pyRepr(text)}`,
      );
    }
    return t;
  }

  function parseSeqLen(text) {
    const m = /^\s*([0-9]+)\s*$/.exec(String(text));
    const value = m ? Number(m[1]) : NaN;
    if (!(Number.isSafeInteger(value) && value > 0)) {
      throw new InputError(
        "seq_len",
        `sequence length (seq_len) must be a positive integer; got ${pyRepr(text)}`,
      );
    }
    return value;
  }

  function parseChoice(value, name, field, choices) {
    if (!choices.includes(value)) {
      throw new InputError(
        field,
        `${name} must be one of ${pyList(choices)}; got ${pyRepr(value)}`,
      );
    }
    return value;
  }

  // ------------------------------------------------------------------ numbers as Python prints them
  function expSuffix(e) {
    return `e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }

  /** format(v, ".{d}e") */
  function fmtE(v, d) {
    const [m, e] = v.toExponential(d).split("e");
    return m + expSuffix(Number(e));
  }

  const stripZeros = (s) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);

  /** format(v, ".{p}g") */
  function fmtG(v, p) {
    if (v === 0) return "0";
    const [m, e] = v.toExponential(p - 1).split("e");
    const exp = Number(e);
    if (exp < -4 || exp >= p) return stripZeros(m) + expSuffix(exp);
    return stripZeros(v.toFixed(Math.max(0, p - 1 - exp)));
  }

  /** format(v, ".{d}f"), with Python's round-half-even on exact ties. */
  function fmtF(v, d) {
    const scaled = v * 10 ** d;
    if (Number.isInteger(scaled * 2) && !Number.isInteger(scaled)) {
      let n = Math.floor(scaled);
      if (n % 2 !== 0) n += 1;
      return (n / 10 ** d).toFixed(d);
    }
    return v.toFixed(d);
  }

  /** format(v, ".{d}%") */
  const fmtPct = (v, d) => fmtF(v * 100, d) + "%";

  /** bayes_steplaw.plots.si: 4.19e6 -> "4.19M" */
  function si(value) {
    for (const [scale, suffix] of [
      [1e12, "T"],
      [1e9, "B"],
      [1e6, "M"],
      [1e3, "K"],
    ]) {
      if (Math.abs(value) >= scale) return fmtG(value / scale, 3) + suffix;
    }
    return fmtG(value, 3);
  }

  /** bayes_steplaw.plots.fmt_lr: 0.002 -> "2e-3" */
  function fmtLrTick(value) {
    const exp = Math.floor(Math.log10(value) + 1e-9);
    return `${fmtG(value / 10 ** exp, 6)}e${exp}`;
  }

  // ------------------------------------------------------------------ draws to summaries
  function drawsOf(data, ref) {
    const values = data.draws[ref];
    if (!values) throw new Error(`planner.json lacks the draws ${ref}`);
    return values;
  }

  /** a + x·b + y·c per draw (the row [1, x, y] times the coefficient columns). */
  function linear(data, refs, x, y) {
    const [a, b, c] = refs.map((ref) => drawsOf(data, ref));
    const out = new Float64Array(a.length);
    for (let s = 0; s < a.length; s++) out[s] = a[s] + x * b[s] + y * c[s];
    return out;
  }

  /** posterior.py: sorted_quantile (numpy's 'linear' method) */
  function sortedQuantile(sorted, q) {
    const h = (sorted.length - 1) * q;
    const lo = Math.floor(h);
    const hi = Math.min(lo + 1, sorted.length - 1);
    return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
  }

  /** posterior.py: hdi_bounds, the narrowest window holding floor(prob·n) + 1 sorted draws */
  function hdiBounds(sorted, prob) {
    const n = sorted.length;
    const width = Math.floor(prob * n);
    if (width < 1 || width >= n) {
      throw new InputError(
        "prob",
        `interval mass (prob) = ${prob} leaves no interval with ${n} draws`,
      );
    }
    let start = 0;
    let span = Infinity;
    for (let i = 0; i + width < n; i++) {
      const d = sorted[i + width] - sorted[i];
      if (d < span) {
        span = d;
        start = i;
      }
    }
    return [sorted[start], sorted[start + width]];
  }

  function median(values) {
    return sortedQuantile(Float64Array.from(values).sort(), 0.5);
  }

  const decadesOutside = (v, [lo, hi]) =>
    Math.max(Math.log10(v) - Math.log10(hi), Math.log10(lo) - Math.log10(v), 0);

  /** StepLawPosterior.predict(N, D, group=, kind=, seq_len=).to_dataframe(prob) */
  function predict(data, N, D, group, kind, seqLen, prob) {
    const opt = data.optimum;
    const x = Math.log(N) - opt.log_n0;
    const y = Math.log(D) - opt.log_d0;
    const refs = opt.coefficients[group][kind];
    const out = {};
    for (const [law, name] of [
      ["lr", "lr"],
      ["bs", "batch_tokens"],
    ]) {
      const sorted = linear(data, refs[law], x, y).sort();
      const [lo, hi] = hdiBounds(sorted, prob);
      out[name] = Math.exp(sortedQuantile(sorted, 0.5));
      out[`${name}_lower`] = Math.exp(lo);
      out[`${name}_upper`] = Math.exp(hi);
    }
    for (const suffix of ["", "_lower", "_upper"]) {
      out[`batch_sequences${suffix}`] = out[`batch_tokens${suffix}`] / seqLen;
    }
    out.N_decades_outside = decadesOutside(N, opt.N_range);
    out.D_decades_outside = decadesOutside(D, opt.D_range);
    return out;
  }

  /** BootstrapOLS.predict's point: the mean-coefficient law (bootstrap.py: _mean_law) */
  function paperPoint(data, N, D, seqLen) {
    const p = data.paper;
    const lnN = Math.log(N);
    const lnD = Math.log(D);
    const lr = Math.exp(lnN * p.lr[1] + lnD * p.lr[2] + p.lr[0]);
    const tokens = Math.exp(lnD * p.bs[2] + p.bs[0]);
    return { lr, batch_tokens: tokens, batch_sequences: tokens / seqLen };
  }

  // ------------------------------------------------------------------ the bowl
  /** LandscapePosterior.bowl(N, D, group): per-draw m_lr, m_bs, a, b, h, k */
  function bowl(data, N, D, group) {
    const land = data.landscape;
    const r = land.bowls[group];
    const x = Math.log(N) - land.log_n0;
    const y = Math.log(D) - land.log_d0;
    const logA = linear(data, r.log_a, x, y);
    const logB = linear(data, r.log_b, x, y);
    const k = drawsOf(data, r.k);
    const rho = drawsOf(data, r.rho);
    const n = k.length;
    const a = new Float64Array(n);
    const b = new Float64Array(n);
    const h = new Float64Array(n);
    for (let s = 0; s < n; s++) {
      a[s] = Math.exp(logA[s]);
      b[s] = Math.exp(logB[s]);
      h[s] = rho[s] * Math.sqrt(a[s] * b[s] * Math.min(1.0, k[s])); // bowl.py: cross_term
    }
    return { m_lr: linear(data, r.lr, x, y), m_bs: linear(data, r.bs, x, y), a, b, h, k, n };
  }

  /** bowl.py: quadratic */
  const quadratic = (x, y, a, b, h, k) => (x > 0 ? a * k : a) * x * x + b * y * y + 2.0 * h * x * y;

  /** bowl.py: lr_intervals for one draw: the x-interval where q(x, y) <= t, written into
      out[0], out[1] ([BIG, BIG] when empty); one scratch array, no allocation per draw. */
  function lrInterval(out, y, t, a, b, h, k) {
    const hy = h * y;
    const c0 = b * y * y - t;
    const ak = a * k;
    const discR = hy * hy - ak * c0;
    const discL = hy * hy - a * c0;
    const inside0 = c0 <= 0;
    const right = hy < 0;
    if (!inside0 && (right ? discR < 0 : discL < 0)) {
      out[0] = BIG;
      out[1] = BIG;
      return out;
    }
    const sqR = Math.sqrt(Math.max(discR, 0.0));
    const sqL = Math.sqrt(Math.max(discL, 0.0));
    const lo = inside0 || !right ? (-hy - sqL) / a : (-hy - sqR) / ak;
    const hi = inside0 || right ? (-hy + sqR) / ak : (-hy + sqL) / a;
    out[0] = Math.min(Math.max(lo, -BIG), BIG);
    out[1] = Math.min(Math.max(hi, -BIG), BIG);
    return out;
  }

  /** plateau_probability at one (ln lr, ln batch): the fraction of draws with q <= tol */
  function plateauProbability(g, tol, logLr, logBs) {
    const iv = new Float64Array(2);
    let count = 0;
    for (let s = 0; s < g.n; s++) {
      lrInterval(iv, logBs - g.m_bs[s], tol, g.a[s], g.b[s], g.h[s], g.k[s]);
      if (iv[0] + g.m_lr[s] <= logLr && logLr <= iv[1] + g.m_lr[s]) count++;
    }
    return count / g.n;
  }

  /** numpy.linspace(start, stop, n) */
  function linspace(start, stop, n) {
    const step = (stop - start) / (n - 1);
    const out = new Float64Array(n);
    for (let j = 0; j < n; j++) out[j] = j * step + start;
    out[n - 1] = stop;
    return out;
  }

  /** The first index j with xs[j] >= v (or xs[j] > v when `strict`), for a sorted, nearly
      uniform grid: a guess from the spacing, settled by exact comparisons. */
  function firstAbove(xs, v, strict, x0, dx) {
    const n = xs.length;
    let j = Math.ceil((v - x0) / dx);
    j = Math.min(Math.max(j, 0), n);
    if (strict) {
      while (j > 0 && xs[j - 1] > v) j--;
      while (j < n && !(xs[j] > v)) j++;
    } else {
      while (j > 0 && xs[j - 1] >= v) j--;
      while (j < n && !(xs[j] >= v)) j++;
    }
    return j;
  }

  /** plateau_region's grid and probabilities: prob[i][j] at batch[i], lr[j] */
  function plateauGrid(g, tol, spec) {
    const n = spec.n;
    const cLr = median(g.m_lr);
    const cBs = median(g.m_bs);
    const lr = Array.from(
      linspace(cLr - spec.lr_half_width, cLr + spec.lr_half_width, n),
      Math.exp,
    );
    const batch = Array.from(
      linspace(cBs - spec.bs_half_width, cBs + spec.bs_half_width, n),
      Math.exp,
    );
    const xs = Float64Array.from(lr, Math.log);
    const prob = [];
    const diff = new Int32Array(n + 1);
    const iv = new Float64Array(2);
    const x0 = xs[0];
    const dx = (xs[n - 1] - xs[0]) / (n - 1);
    // per row, each draw's interval [lo, hi] covers the grid columns j0 .. j1 - 1: a
    // difference array counts, for every column, the draws whose interval holds it
    for (let i = 0; i < n; i++) {
      diff.fill(0);
      const logBs = Math.log(batch[i]);
      for (let s = 0; s < g.n; s++) {
        lrInterval(iv, logBs - g.m_bs[s], tol, g.a[s], g.b[s], g.h[s], g.k[s]);
        const j0 = firstAbove(xs, iv[0] + g.m_lr[s], false, x0, dx);
        const j1 = firstAbove(xs, iv[1] + g.m_lr[s], true, x0, dx);
        if (j1 > j0) {
          diff[j0] += 1;
          diff[j1] -= 1;
        }
      }
      const row = new Array(n);
      let running = 0;
      for (let j = 0; j < n; j++) {
        running += diff[j];
        row[j] = running / g.n;
      }
      prob.push(row);
    }
    return { lr, batch, xs: Array.from(xs), ys: batch.map(Math.log), prob };
  }

  /** LandscapePosterior.recommend: the (ln lr, ln batch) minimising the mean of q over draws.
      E[q] is convex and piecewise quadratic (C1), so damped Newton steps reach its minimum. */
  function recommend(g, tol, seqLen) {
    function risk(X, Y) {
      let f = 0,
        gx = 0,
        gy = 0,
        hxx = 0,
        hxy = 0,
        hyy = 0;
      for (let s = 0; s < g.n; s++) {
        const x = X - g.m_lr[s];
        const y = Y - g.m_bs[s];
        const A = x > 0 ? g.a[s] * g.k[s] : g.a[s];
        f += A * x * x + g.b[s] * y * y + 2.0 * g.h[s] * x * y;
        gx += 2.0 * A * x + 2.0 * g.h[s] * y;
        gy += 2.0 * g.b[s] * y + 2.0 * g.h[s] * x;
        hxx += 2.0 * A;
        hxy += 2.0 * g.h[s];
        hyy += 2.0 * g.b[s];
      }
      const n = g.n;
      return { f: f / n, gx: gx / n, gy: gy / n, hxx: hxx / n, hxy: hxy / n, hyy: hyy / n };
    }
    const lr0 = median(g.m_lr);
    const bs0 = median(g.m_bs);
    let X = lr0;
    let Y = bs0;
    let r = risk(X, Y);
    for (let iter = 0; iter < 100; iter++) {
      const det = r.hxx * r.hyy - r.hxy * r.hxy;
      const dX = -(r.hyy * r.gx - r.hxy * r.gy) / det;
      const dY = -(r.hxx * r.gy - r.hxy * r.gx) / det;
      const slope = r.gx * dX + r.gy * dY;
      let t = 1.0;
      let next = risk(X + dX, Y + dY);
      while (next.f > r.f + 1e-4 * t * slope && t > 1e-10) {
        t /= 2;
        next = risk(X + t * dX, Y + t * dY);
      }
      X += t * dX;
      Y += t * dY;
      r = next;
      if (Math.abs(t * dX) + Math.abs(t * dY) < 1e-12) break;
    }
    const lr = Math.exp(X);
    const batch = Math.exp(Y);
    return {
      lr,
      batch_tokens: batch,
      batch_sequences: batch / seqLen,
      expected_relative_loss: r.f,
      plateau_probability: plateauProbability(g, tol, Math.log(lr), Math.log(batch)),
      lr_median_optimum: Math.exp(lr0),
      batch_tokens_median_optimum: Math.exp(bs0),
    };
  }

  /** Marching squares: line segments where the grid crosses `level`, in (x, y) data units. */
  function contourSegments(xs, ys, z, level) {
    const segs = [];
    const lerp = (a, b, za, zb) => a + ((level - za) / (zb - za)) * (b - a);
    for (let i = 0; i + 1 < ys.length; i++) {
      for (let j = 0; j + 1 < xs.length; j++) {
        const z00 = z[i][j],
          z01 = z[i][j + 1],
          z10 = z[i + 1][j],
          z11 = z[i + 1][j + 1];
        const idx =
          (z00 >= level) | ((z01 >= level) << 1) | ((z11 >= level) << 2) | ((z10 >= level) << 3);
        if (idx === 0 || idx === 15) continue;
        const bottom = [lerp(xs[j], xs[j + 1], z00, z01), ys[i]];
        const right = [xs[j + 1], lerp(ys[i], ys[i + 1], z01, z11)];
        const top = [lerp(xs[j], xs[j + 1], z10, z11), ys[i + 1]];
        const left = [xs[j], lerp(ys[i], ys[i + 1], z00, z10)];
        const middle = (z00 + z01 + z10 + z11) / 4 >= level;
        const cases = {
          1: [[left, bottom]],
          2: [[bottom, right]],
          3: [[left, right]],
          4: [[right, top]],
          5: middle
            ? [
                [left, top],
                [bottom, right],
              ]
            : [
                [left, bottom],
                [right, top],
              ],
          6: [[bottom, top]],
          7: [[left, top]],
          8: [[top, left]],
          9: [[top, bottom]],
          10: middle
            ? [
                [bottom, left],
                [top, right],
              ]
            : [
                [bottom, right],
                [top, left],
              ],
          11: [[top, right]],
          12: [[right, left]],
          13: [[right, bottom]],
          14: [[bottom, left]],
        };
        segs.push(...cases[idx]);
      }
    }
    return segs;
  }

  return {
    InputError,
    pyRepr,
    pyList,
    parseQuantity,
    parseProb,
    parseTol,
    parseSeqLen,
    parseChoice,
    fmtE,
    fmtG,
    fmtF,
    fmtPct,
    si,
    fmtLrTick,
    predict,
    paperPoint,
    bowl,
    plateauProbability,
    plateauGrid,
    recommend,
    contourSegments,
    median,
  };
})();
