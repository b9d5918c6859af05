/* The planner page's computations (docs/planner.html; the page itself is planner.js): every
   answer of one loss posterior, from the per-draw surfaces in _static/planner.json that
   `bayes-steplaw export-web` writes (bayes_steplaw/web.py).

   Each computation is the Python one, step for step, on the same draws:
   - the surface of a run (bayes_steplaw/bayes/surface.py): linear, phi, excess, best_loss,
     divergence_logit, mean_scale, sigmoid (numpy's logaddexp), and evaluate's expected loss
     (answers.py: Surface.expected, a diverged run counted at 1.5·L*);
   - predict(kind="optimum" | "law") and best_loss (predictive.py: Draws.to_dataframe, the
     equal-tailed interval of the sorted draws, sorted_quantile);
   - expected_loss, plateau_probability(reference="optimum") and recommend (answers.py:
     decide, a grid search then scipy's Nelder-Mead, ported below);
   - the input grammar and messages of the API and the CLI (bayes_steplaw/_validate.py:
     parse_quantity) and Python's number formats, so that the page prints what the CLI prints.
   Plain JavaScript, no library, no DOM here: nothing to build, nothing fetched. */
"use strict";

window.PlannerCore = (() => {
  // ------------------------------------------------------------------ input grammar
  // bayes_steplaw/_validate.py: parse_quantity (same patterns, suffixes and messages)
  const SUFFIX = { "": 1.0, K: 1e3, M: 1e6, B: 1e9, G: 1e9, T: 1e12 };
  const BINARY_SUFFIX = { K: 1024, M: 1048576, G: 1073741824, T: 1099511627776 };
  const QUANTITY = /^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGT]?)\s*$/i;
  const BINARY_QUANTITY = /^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT])i\s*$/i;
  const THOUSANDS = /^\s*[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?\s*(?:[KMBGT]i?)?\s*$/i;
  const MAX_QUANTITY_CHARS = 100;
  const PREVIEW_CHARS = 60;
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

  /** _validate.preview: repr() of the text, cut to 60 characters with the length cut. */
  function preview(text) {
    const chars = Array.from(String(text));
    if (chars.length <= PREVIEW_CHARS) return pyRepr(text);
    const n = chars.length.toLocaleString("en-US");
    return `${pyRepr(chars.slice(0, PREVIEW_CHARS).join(""))}... (${n} characters)`;
  }

  function match(text) {
    let m = QUANTITY.exec(text);
    if (m) return Number(m[1]) * SUFFIX[m[2].toUpperCase()];
    m = BINARY_QUANTITY.exec(text);
    if (m) return Number(m[1]) * BINARY_SUFFIX[m[2].toUpperCase()];
    return null;
  }

  /** _validate._comma_hint: why a comma in one quantity is wrong. */
  function commaHint(text) {
    if (!text.includes(",") || Array.from(text).length > MAX_QUANTITY_CHARS) return "";
    if (THOUSANDS.test(text)) {
      return ` (write it without thousands separators: ${text.trim().replaceAll(",", "")})`;
    }
    const fixed = text.trim().replace(",", ".");
    if (!fixed.includes(",") && match(fixed) !== null) {
      return ` (a comma is not a decimal point: use a decimal point, ${fixed})`;
    }
    return " (a comma is not part of a number)";
  }

  function parseQuantity(text, name, field, examples = EXAMPLES[name] || "7e9, 7B or 1.4T") {
    const s = String(text);
    const bad = `${name} must be a positive number such as ${examples}; got ${preview(s)}`;
    if (Array.from(s).length > MAX_QUANTITY_CHARS) throw new InputError(field, bad);
    const value = match(s);
    if (value === null) throw new InputError(field, bad + commaHint(s));
    if (!Number.isFinite(value) || value <= 0) {
      throw new InputError(field, `${name} must be a positive finite number; got ${preview(s)}`);
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
    if (!Number.isFinite(v)) return v > 0 ? "inf" : v < 0 ? "-inf" : "nan";
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

  // ------------------------------------------------------------------ the draws
  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  /** The draw arrays of planner.json (float64, little-endian, base64) as Float64Arrays. */
  function decodeDraws(draws) {
    const out = {};
    for (const [name, text] of Object.entries(draws)) {
      const bytes = atob(text);
      const buffer = new Uint8Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) buffer[i] = bytes.charCodeAt(i);
      if (LITTLE_ENDIAN) {
        out[name] = new Float64Array(buffer.buffer);
      } else {
        const view = new DataView(buffer.buffer);
        out[name] = Float64Array.from({ length: bytes.length / 8 }, (_, i) =>
          view.getFloat64(8 * i, true),
        );
      }
    }
    return out;
  }

  function drawsOf(data, ref) {
    const values = data.draws[ref];
    if (!values) throw new Error(`planner.json lacks the draws ${ref}`);
    return values;
  }

  /** surface.py: linear, coef[0] + coef[1]·u + coef[2]·v (+ coef[3]·v² + coef[4]·u·v). */
  function linear(data, refs, u, v) {
    const c = refs.map((ref) => drawsOf(data, ref));
    const n = c[0].length;
    const out = new Float64Array(n);
    if (c.length === 5) {
      for (let s = 0; s < n; s++) {
        out[s] = c[0][s] + c[1][s] * u + c[2][s] * v + c[3][s] * v * v + c[4][s] * u * v;
      }
    } else {
      for (let s = 0; s < n; s++) out[s] = c[0][s] + c[1][s] * u + c[2][s] * v;
    }
    return out;
  }

  /** numpy's logaddexp */
  function logaddexp(x, y) {
    if (x === y) return x + Math.LN2;
    const t = x - y;
    if (t > 0) return x + Math.log1p(Math.exp(-t));
    if (t <= 0) return y + Math.log1p(Math.exp(t));
    return t; // NaN
  }

  /** surface.py: sigmoid, 1 / (1 + e^{−z}) without overflow (one exponential: numpy's
      exp(−logaddexp(0, −z)) to rounding) */
  function sigmoid(z) {
    if (z >= 0) return 1.0 / (1.0 + Math.exp(-z));
    const e = Math.exp(z);
    return e / (1.0 + e);
  }

  const SMALL = 1e-3;
  /** surface.py: phi, 2(e^z − 1 − z)/z², its series near 0 */
  function phi(z) {
    if (Math.abs(z) < SMALL) return 1.0 + z / 3.0 + (z * z) / 12.0;
    return (2.0 * (Math.expm1(z) - z)) / (z * z);
  }

  /** surface.py: best_loss, per draw (u, v scalars). */
  function bestLoss(star, u, v, n) {
    const out = new Float64Array(n);
    for (let s = 0; s < n; s++) {
      if (star.log_K) {
        out[s] = star.E[s] + Math.exp(star.log_K[s] - star.a[s] * u - star.b[s] * v);
      } else {
        const terms = logaddexp(star.log_A[s] - star.a[s] * u, star.log_B[s] - star.b[s] * v);
        out[s] = star.E[s] + Math.exp(star.c[s] * terms);
      }
      if (star.tilt_N) {
        // a lab's tilt of ln L* about its own settings' centre
        out[s] *= Math.exp(star.tilt_N[s] * (u - star.u0[s]) + star.tilt_D[s] * (v - star.v0[s]));
      }
    }
    return out;
  }

  const ZERO_SHAPES = ["tilt", "bend", "lr_batch", "skew_lr", "skew_bs", "asym_lr"];

  /** LossPosterior.surface(group).coef at one setting (N, D): every per-draw parameter of
      surface.evaluate, the optimum (m_lr, m_bs), L* (star·star_scale) and the edge tau0. */
  function surfaceAt(data, group, N, D) {
    const geo = data.geometry;
    const c = data.coefficients[group];
    const u = Math.log(N) - geo.log_n0;
    const v = Math.log(D) - geo.log_d0;
    const n = data.n_draws;
    // beyond the fitted data the shape is held at its edge (surface.evaluate's surface_box)
    const clamp = (z, lo, hi) => Math.min(Math.max(z, lo), hi);
    const us = clamp(u, Math.log(geo.N_range[0]) - geo.log_n0, Math.log(geo.N_range[1]) - geo.log_n0);
    const vs = clamp(v, Math.log(geo.D_range[0]) - geo.log_d0, Math.log(geo.D_range[1]) - geo.log_d0);
    const shape = {};
    for (const [name, refs] of Object.entries(c.shape)) shape[name] = linear(data, refs, us, vs);
    for (const name of ZERO_SHAPES) if (!shape[name]) shape[name] = new Float64Array(n);
    const star = {};
    for (const [k, ref] of Object.entries(c.star)) star[k] = drawsOf(data, ref);
    const scale = drawsOf(data, c.star_scale);
    const lossStar = bestLoss(star, u, v, n);
    for (let s = 0; s < n; s++) lossStar[s] *= scale[s];
    return {
      n,
      u,
      v,
      N,
      D,
      m_lr: linear(data, c.m_lr, u, v),
      m_bs: linear(data, c.m_bs, u, v),
      law: () => ({ m_lr: linear(data, c.law_m_lr, u, v), m_bs: linear(data, c.law_m_bs, u, v) }),
      shape,
      star: lossStar,
      tau0: linear(data, c.tau0, u, v),
      tau1: drawsOf(data, c.tau1),
      tau2: drawsOf(data, c.tau2),
      width: drawsOf(data, c.width),
      diverged: data.surface.diverged_excess,
    };
  }

  /** The parts of each draw's surface that depend on the batch alone (ln batch Y): a row of
      the (lr, batch) plane costs two exponentials per draw and lr after this. */
  function row(S, Y) {
    const n = S.n;
    const sh = S.shape;
    const r = {
      y: new Float64Array(n),
      ty: new Float64Array(n),
      byy: new Float64Array(n),
      aLr: new Float64Array(n),
      qBs: new Float64Array(n),
      tau: new Float64Array(n),
    };
    for (let s = 0; s < n; s++) {
      const y = Y - S.m_bs[s];
      r.y[s] = y;
      r.ty[s] = sh.tilt[s] * y;
      r.byy[s] = sh.bend[s] * y * y;
      r.aLr[s] = Math.exp(sh.log_a_lr[s] + sh.lr_batch[s] * y);
      r.qBs[s] = Math.exp(sh.log_a_bs[s]) * y * y * phi(sh.skew_bs[s] * y);
      r.tau[s] = S.tau0[s] + S.tau1[s] * y + S.tau2[s] * y * y;
    }
    return r;
  }

  /** Means over draws at (ln lr X) on a row: the expected loss (a diverged run counted at
      (1 + diverged)·L*, and so a run whose q passes diverged), P(plateau) =
      mean((1 − p)·[q <= tol]), P(diverge), the expected excess
      mean((1 − p)·min(q, diverged) + p·diverged); `tol` null skips the plateau. */
  function at(S, r, X, tol) {
    const n = S.n;
    const { m_lr: mLr, star: lossStar, width } = S;
    const skew = S.shape.skew_lr;
    const asym = S.shape.asym_lr;
    const { ty, byy, aLr, qBs, tau } = r;
    const de = S.diverged;
    const check = tol !== null;
    let expected = 0,
      plateau = 0,
      pDiv = 0,
      excess = 0;
    for (let s = 0; s < n; s++) {
      const x = X - mLr[s];
      const xd = x - ty[s] - byy[s];
      // the two sides' curvatures differ by e^(±2·asym): surface.excess
      const xv = xd * Math.exp(asym[s] * Math.sign(xd));
      const q = aLr[s] * xv * xv * phi(skew[s] * xv) + qBs[s];
      const p = sigmoid((x - tau[s]) / width[s]);
      const star = lossStar[s];
      // a run whose loss would pass (1 + diverged)·L* counts as diverged: Surface.excess
      const e = (1 - p) * (p < 1 ? Math.min(q, de) : 0.0) + p * de;
      expected += star * (1.0 + e);
      pDiv += p;
      excess += e;
      if (check && q <= tol) plateau += 1 - p;
    }
    return {
      expected: expected / n,
      plateau: plateau / n,
      p_diverge: pDiv / n,
      excess: excess / n,
    };
  }

  /** answers.expected_loss at one point (ln lr, ln batch). */
  const expectedLoss = (S, X, Y) => at(S, row(S, Y), X, null).expected;

  /** plateau_probability(reference="optimum") at one point. */
  const plateauProbability = (S, tol, X, Y) => at(S, row(S, Y), X, tol).plateau;

  // ------------------------------------------------------------------ summaries
  /** predictive.py: sorted_quantile (numpy's 'linear' method) */
  function sortedQuantile(sorted, q) {
    const h = (sorted.length - 1) * q;
    const lo = Math.floor(h);
    const hi = Math.min(lo + 1, sorted.length - 1);
    return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
  }

  function median(values) {
    return sortedQuantile(Float64Array.from(values).sort(), 0.5);
  }

  /** Draws.to_dataframe(prob): median and equal-tailed bounds of the draws */
  function summary(values, prob) {
    const sorted = Float64Array.from(values).sort();
    return {
      median: sortedQuantile(sorted, 0.5),
      lower: sortedQuantile(sorted, (1 - prob) / 2),
      upper: sortedQuantile(sorted, (1 + prob) / 2),
    };
  }

  const decadesOutside = (v, [lo, hi]) =>
    Math.max(Math.log10(v) - Math.log10(hi), Math.log10(lo) - Math.log10(v), 0);

  /** predict(N, D, group=, kind="optimum" | "law", seq_len=).to_dataframe(prob) */
  function predict(S, kind, seqLen, prob, data) {
    const m = kind === "law" ? S.law() : S;
    const out = {};
    for (const [law, name] of [
      ["m_lr", "lr"],
      ["m_bs", "batch_tokens"],
    ]) {
      const s = summary(Array.from(m[law], Math.exp), prob);
      out[`${name}_median`] = s.median;
      out[`${name}_lower`] = s.lower;
      out[`${name}_upper`] = s.upper;
    }
    const factor = 1.0 / seqLen; // Draws' derived quantity: batch_tokens × (1 / seq_len)
    for (const stat of ["median", "lower", "upper"]) {
      out[`batch_sequences_${stat}`] = out[`batch_tokens_${stat}`] * factor;
    }
    out.N_decades_outside = decadesOutside(S.N, data.geometry.N_range);
    out.D_decades_outside = decadesOutside(S.D, data.geometry.D_range);
    return out;
  }

  /** best_loss(N, D, group=, kind="best").to_dataframe(prob) */
  function bestLossSummary(S, prob) {
    const s = summary(S.star, prob);
    return { loss_star_median: s.median, loss_star_lower: s.lower, loss_star_upper: s.upper };
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

  // ------------------------------------------------------------------ the decision
  /** numpy.argsort of a few values (stable; NaN last). */
  function argsort(values) {
    const key = (v) => (Number.isNaN(v) ? Infinity : v);
    return values
      .map((v, i) => i)
      .sort((i, j) => {
        const a = values[i],
          b = values[j];
        if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) - Number.isNaN(b);
        return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
      });
  }

  class MaxCalls extends Error {}

  /** scipy.optimize.minimize(f, x0, method="Nelder-Mead", options={xatol, fatol}), scipy's
      _minimize_neldermead step for step (not adaptive, no bounds). */
  function nelderMead(f, x0, xatol, fatol) {
    const N = x0.length;
    const [rho, chi, psi, sigma] = [1, 2, 0.5, 0.5];
    const maxiter = N * 200;
    const maxfun = N * 200;
    let fcalls = 0;
    const func = (x) => {
      if (fcalls >= maxfun) throw new MaxCalls();
      fcalls += 1;
      return f(x);
    };
    let sim = [x0.slice()];
    for (let k = 0; k < N; k++) {
      const y = x0.slice();
      y[k] = y[k] !== 0 ? (1 + 0.05) * y[k] : 0.00025;
      sim.push(y);
    }
    let fsim = new Array(N + 1).fill(Infinity);
    const sortSimplex = () => {
      const ind = argsort(fsim);
      sim = ind.map((i) => sim[i]);
      fsim = ind.map((i) => fsim[i]);
    };
    try {
      for (let k = 0; k <= N; k++) fsim[k] = func(sim[k]);
    } catch (e) {
      if (!(e instanceof MaxCalls)) throw e;
    }
    sortSimplex();
    const comb = (a, xa, b, xb) => xa.map((v, i) => a * v + b * xb[i]);
    let iterations = 1;
    while (fcalls < maxfun && iterations < maxiter) {
      try {
        let dx = 0,
          df = 0;
        for (let j = 1; j <= N; j++) {
          for (let i = 0; i < N; i++) dx = Math.max(dx, Math.abs(sim[j][i] - sim[0][i]));
          const d = Math.abs(fsim[0] - fsim[j]);
          df = Number.isNaN(d) || Number.isNaN(df) ? NaN : Math.max(df, d);
        }
        if (dx <= xatol && df <= fatol) break;
        const xbar = sim[0].slice();
        for (let j = 1; j < N; j++) for (let i = 0; i < N; i++) xbar[i] += sim[j][i];
        for (let i = 0; i < N; i++) xbar[i] /= N;
        const last = sim[N];
        const xr = comb(1 + rho, xbar, -rho, last);
        const fxr = func(xr);
        let doshrink = false;
        if (fxr < fsim[0]) {
          const xe = comb(1 + rho * chi, xbar, -rho * chi, last);
          const fxe = func(xe);
          if (fxe < fxr) {
            sim[N] = xe;
            fsim[N] = fxe;
          } else {
            sim[N] = xr;
            fsim[N] = fxr;
          }
        } else if (fxr < fsim[N - 1]) {
          sim[N] = xr;
          fsim[N] = fxr;
        } else {
          if (fxr < fsim[N]) {
            const xc = comb(1 + psi * rho, xbar, -psi * rho, last);
            const fxc = func(xc);
            if (fxc <= fxr) {
              sim[N] = xc;
              fsim[N] = fxc;
            } else doshrink = true;
          } else {
            const xcc = comb(1 - psi, xbar, psi, last);
            const fxcc = func(xcc);
            if (fxcc < fsim[N]) {
              sim[N] = xcc;
              fsim[N] = fxcc;
            } else doshrink = true;
          }
          if (doshrink) {
            for (let j = 1; j <= N; j++) {
              sim[j] = sim[0].map((v, i) => v + sigma * (sim[j][i] - v));
              fsim[j] = func(sim[j]);
            }
          }
        }
        iterations += 1;
      } catch (e) {
        if (!(e instanceof MaxCalls)) throw e;
      }
      sortSimplex();
    }
    return { x: sim[0], fun: fsim.some(Number.isNaN) ? NaN : Math.min(...fsim) };
  }

  /** answers._search_axis: a grid of `step` over the draws' spread around their median. */
  function searchAxis(centre, step, halfWidth) {
    const sorted = Float64Array.from(centre).sort();
    let lo = sortedQuantile(sorted, 0.005);
    const mid = sortedQuantile(sorted, 0.5);
    let hi = sortedQuantile(sorted, 0.995);
    lo = Math.min(lo, mid - halfWidth);
    hi = Math.max(hi, mid + halfWidth);
    const n = Math.ceil((hi - lo) / step) + 1;
    return Array.from({ length: n }, (_, k) => lo + step * k);
  }

  /** answers.decide: (ln lr, ln batch, expected loss) of least expected loss over the free
      ones of lr and batch (null: free). */
  function decide(S, data, fixedX, fixedY) {
    const free = [fixedX === null, fixedY === null];
    if (!free[0] && !free[1]) return [fixedX, fixedY, expectedLoss(S, fixedX, fixedY)];
    const dec = data.decision;
    const xs = free[0] ? searchAxis(S.m_lr, dec.steps[0], dec.half_widths[0]) : [fixedX];
    const ys = free[1] ? searchAxis(S.m_bs, dec.steps[1], dec.half_widths[1]) : [fixedY];
    const values = new Float64Array(xs.length * ys.length);
    for (let j = 0; j < ys.length; j++) {
      const r = row(S, ys[j]);
      for (let i = 0; i < xs.length; i++) {
        values[i * ys.length + j] = at(S, r, xs[i], null).expected;
      }
    }
    let k = -1;
    for (let i = 0; i < values.length; i++) {
      if (!Number.isNaN(values[i]) && (k < 0 || values[i] < values[k])) k = i;
    }
    if (k < 0) k = 0;
    const start = [xs[Math.floor(k / ys.length)], ys[k % ys.length]];
    const which = [0, 1].filter((i) => free[i]);
    const objective = (z) => {
      const point = start.slice();
      which.forEach((i, m) => (point[i] = z[m]));
      return expectedLoss(S, point[0], point[1]);
    };
    const found = nelderMead(objective, which.map((i) => start[i]), dec.xatol, dec.fatol);
    const best = start.slice();
    if (found.fun <= values[k]) which.forEach((i, m) => (best[i] = found.x[m]));
    return [best[0], best[1], Math.min(found.fun, values[k])];
  }

  /** recommend(N, D, lr=, batch_tokens=, group=, tol=, seq_len=): the Recommendation's
      columns; `free` is decide's free choice (computed once per setting). */
  function recommendation(S, data, tol, seqLen, free, fixedX = null, fixedY = null) {
    const [x, y, value] =
      fixedX === null && fixedY === null ? free : decide(S, data, fixedX, fixedY);
    const point = at(S, row(S, y), x, tol);
    const batch = Math.exp(y);
    return {
      lr: Math.exp(x),
      batch_tokens: batch,
      batch_sequences: batch / seqLen,
      expected_loss: value,
      expected_excess: point.excess,
      cost: value - free[2],
      plateau_probability: point.plateau,
      p_diverge: point.p_diverge,
      lr_median_optimum: Math.exp(median(S.m_lr)),
      batch_tokens_median_optimum: Math.exp(median(S.m_bs)),
      best_lr: Math.exp(free[0]),
      best_batch_tokens: Math.exp(free[1]),
    };
  }

  // ------------------------------------------------------------------ the map
  /** numpy.linspace(start, stop, n) */
  function linspace(start, stop, n) {
    const step = (stop - start) / (n - 1);
    const out = new Float64Array(n);
    for (let j = 0; j < n; j++) out[j] = j * step + start;
    out[n - 1] = stop;
    return out;
  }

  /** The expected loss and the plateau probability over an n x n grid of (lr, batch) around
      the median optimum: value[i][j] at batch[i], lr[j]. */
  function lossMap(S, tol, spec) {
    const n = spec.n;
    const cLr = median(S.m_lr);
    const cBs = median(S.m_bs);
    const xs = linspace(cLr - spec.lr_half_width, cLr + spec.lr_half_width, n);
    const ys = linspace(cBs - spec.bs_half_width, cBs + spec.bs_half_width, n);
    const expected = [];
    const prob = [];
    for (let i = 0; i < n; i++) {
      const r = row(S, ys[i]);
      const e = new Array(n);
      const p = new Array(n);
      for (let j = 0; j < n; j++) {
        const out = at(S, r, xs[j], tol);
        e[j] = out.expected;
        p[j] = out.plateau;
      }
      expected.push(e);
      prob.push(p);
    }
    return {
      xs: Array.from(xs),
      ys: Array.from(ys),
      lr: Array.from(xs, Math.exp),
      batch: Array.from(ys, Math.exp),
      expected,
      prob,
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
    decodeDraws,
    surfaceAt,
    predict,
    bestLossSummary,
    paperPoint,
    expectedLoss,
    plateauProbability,
    decide,
    recommendation,
    nelderMead,
    lossMap,
    contourSegments,
    median,
  };
})();
