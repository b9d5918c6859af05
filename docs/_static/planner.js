/* The planner page (docs/planner.html): inputs, the URL, the numbers, errors. The
   computations, each the Python one on the same draws, are in planner_core.js, the map in
   planner_map.js; the data are _static/planner.json, written by `bayes-steplaw export-web`
   (bayes_steplaw/web.py). */
"use strict";

(() => {
  const DATA_URL = "_static/planner.json";
  const FORMAT = "bayes-steplaw-planner";
  const FORMAT_VERSION = 2;
  const ENCODING = "float64-le-base64";
  const started = performance.now();
  const {
    InputError,
    pyRepr,
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
    decodeDraws,
    surfaceAt,
    predict,
    bestLossSummary,
    paperPoint,
    plateauProbability,
    decide,
    recommendation,
    lossMap,
  } = window.PlannerCore;
  const { drawHeatmap, drawLegend } = window.PlannerMap;
  let DATA = null;

  // ------------------------------------------------------------------ the page
  const $ = (id) => document.getElementById(id);
  const FIELDS = ["N", "D", "seq_len", "group", "kind", "prob", "tol"];
  const MINE = ["lr", "batch"];
  let cache = null; // {key, free, map}: what depends on (N, D, group, tol) only
  let renderId = 0; // the map of a superseded update is not drawn
  let firstRender = true;
  let scheduled = false;

  function setNumber(id, value, text, title) {
    const el = $(id);
    el.dataset.value = String(value);
    el.textContent = text;
    if (title) el.title = title;
    else el.removeAttribute("title");
  }

  function clearNumber(id) {
    const el = $(id);
    delete el.dataset.value;
    el.textContent = "–";
    el.removeAttribute("title");
  }

  function clearNumbers(root) {
    for (const el of root.querySelectorAll("[data-value]")) {
      delete el.dataset.value;
      el.textContent = "";
      el.removeAttribute("title");
    }
  }

  const raw = (id) => $(id).value;
  const lrText = (v) => fmtE(v, 3);
  const tokensText = (v) => fmtG(v, 4);
  const pctText = (v) => (Number.isFinite(v) ? fmtPct(v, 3) : "∞");
  const lossText = (v) => (Number.isFinite(v) ? fmtF(v, 4) : "∞");
  const signed = (text) => (text.startsWith("-") ? text : "+" + text);
  /** The CLI's batch-cost line: {cost:+.4f} ({cost / expected_loss:+.2%}) */
  const costText = (rec) =>
    Number.isFinite(rec.cost)
      ? `${signed(fmtF(rec.cost, 4))} (${signed(fmtPct(rec.cost / rec.expected_loss, 2))})`
      : "∞";

  function readInputs() {
    const errors = [];
    const values = {};
    const attempt = (field, f) => {
      try {
        values[field] = f();
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        errors.push(e);
      }
    };
    attempt("N", () => parseQuantity(raw("N"), "N", "N"));
    attempt("D", () => parseQuantity(raw("D"), "D", "D"));
    attempt("seq_len", () => parseSeqLen(raw("seq_len")));
    attempt("group", () =>
      parseChoice(
        raw("group"),
        "group",
        "group",
        DATA.groups.map((g) => g.name),
      ),
    );
    attempt("kind", () => {
      const missing = (DATA.kinds_unavailable || []).find((k) => k.name === raw("kind"));
      if (missing) {
        throw new InputError(
          "kind",
          `kind ${pyRepr(missing.name)} is not available here: ${missing.reason}`,
        );
      }
      return parseChoice(
        raw("kind"),
        "kind",
        "kind",
        DATA.kinds.map((k) => k.name),
      );
    });
    attempt("prob", () => parseProb(raw("prob")));
    attempt("tol", () => parseTol(raw("tol")));
    return { values, errors };
  }

  /** The setting of one's own: a peak lr, a batch, or both (each optional). */
  function readMine() {
    const out = { errors: [], lr: null, batch: null };
    if (raw("lr").trim()) {
      try {
        out.lr = parseQuantity(raw("lr"), "lr", "lr");
      } catch (e) {
        out.errors.push(e);
      }
    }
    if (raw("batch").trim()) {
      try {
        out.batch = parseQuantity(raw("batch"), "batch", "batch");
      } catch (e) {
        out.errors.push(e);
      }
    }
    return out;
  }

  function markInvalid(errors) {
    const bad = new Set(errors.map((e) => e.field));
    for (const id of [...FIELDS, ...MINE]) {
      $(id).setAttribute("aria-invalid", bad.has(id) ? "true" : "false");
    }
  }

  function updateShare() {
    const params = new URLSearchParams();
    for (const id of [...FIELDS, ...MINE]) {
      const v = raw(id).trim();
      if (v !== "") params.set(id, v);
    }
    const query = params.toString();
    const here = location.pathname.split("/").pop() || "planner.html";
    history.replaceState(null, "", `${here}?${query}`);
    const link = $("share");
    link.href = `${here}?${query}`;
    link.textContent = location.href;
  }

  function showErrors(errors) {
    const box = $("errors");
    if (!errors.length) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    const title = document.createElement("p");
    title.className = "title";
    title.textContent = "Check the inputs: no numbers are shown until they are valid.";
    const items = errors.map((e) => {
      const p = document.createElement("p");
      p.className = "message";
      p.dataset.field = e.field;
      p.textContent = e.message;
      return p;
    });
    box.replaceChildren(title, ...items);
    box.hidden = false;
  }

  /** Draws.describe(prob): what the median and the interval are about, in the package's
      words (bayes_steplaw.bayes.predictive.ABOUT). */
  function describe(about, prob, group) {
    return `posterior median and ${fmtPct(prob, 0)} interval of ${about}; group ${pyRepr(group)}`;
  }

  function renderPrediction(v, S) {
    const pred = predict(S, v.kind, v.seq_len, v.prob, DATA);
    const paper = paperPoint(DATA, v.N, v.D, v.seq_len);
    for (const name of ["lr", "batch_tokens", "batch_sequences"]) {
      for (const stat of ["median", "lower", "upper"]) {
        const value = pred[`${name}_${stat}`];
        const text = name === "lr" ? lrText(value) : tokensText(value);
        setNumber(
          `out-${name}_${stat}`,
          value,
          text,
          name === "batch_tokens" ? `${si(value)} tokens` : "",
        );
      }
      const p = paper[name];
      setNumber(
        `paper-${name}`,
        p,
        name === "lr" ? lrText(p) : tokensText(p),
        name === "batch_tokens" ? `${si(p)} tokens` : "",
      );
    }
    const star = bestLossSummary(S, v.prob);
    for (const stat of ["median", "lower", "upper"]) {
      const value = star[`loss_star_${stat}`];
      setNumber(`out-loss_star_${stat}`, value, lossText(value));
    }
    const kind = DATA.kinds.find((k) => k.name === v.kind);
    $("interval-head").textContent = `${fmtPct(v.prob, 0)} interval`;
    $("describe").textContent = `(${describe(kind.about, v.prob, v.group)})`;
    $("describe-star").textContent = `(${describe(DATA.vocabulary.best.about, v.prob, v.group)})`;
    $("method").textContent =
      `Intervals: the ${DATA.interval_method.description}. Paper's column: the ` +
      `${DATA.paper.description}.`;
    const notes = [];
    const geo = DATA.geometry;
    for (const name of ["N", "D"]) {
      const decades = pred[`${name}_decades_outside`];
      if (decades > 0) {
        const [lo, hi] = geo[`${name}_range`];
        notes.push(
          `note: ${name} lies ${fmtF(decades, 2)} orders of magnitude outside the fitted data's ${name} range [${fmtG(lo, 3)}, ${fmtG(hi, 3)}]: this is an extrapolation of the law`,
        );
      }
    }
    const box = $("extrapolation");
    if (notes.length) {
      const title = document.createElement("p");
      title.className = "title";
      title.textContent = "Extrapolation";
      const paras = notes.map((t) => {
        const p = document.createElement("p");
        p.className = "note";
        p.textContent = t;
        return p;
      });
      const span = document.createElement("p");
      span.className = "small";
      span.textContent = `The fitted data span N ${si(geo.N_range[0])} to ${si(geo.N_range[1])} and D ${si(geo.D_range[0])} to ${si(geo.D_range[1])} tokens; the map below extrapolates alike.`;
      box.replaceChildren(title, ...paras, span);
      box.hidden = false;
    } else {
      box.hidden = true;
      box.replaceChildren();
    }
    return { pred, paper, star };
  }

  function showRecommendation(prefix, rec) {
    setNumber(`${prefix}-lr`, rec.lr, lrText(rec.lr));
    setNumber(
      `${prefix}-batch_tokens`,
      rec.batch_tokens,
      tokensText(rec.batch_tokens),
      `${si(rec.batch_tokens)} tokens`,
    );
    setNumber(`${prefix}-batch_sequences`, rec.batch_sequences, tokensText(rec.batch_sequences));
    setNumber(`${prefix}-expected_loss`, rec.expected_loss, lossText(rec.expected_loss));
    setNumber(`${prefix}-expected_excess`, rec.expected_excess, pctText(rec.expected_excess));
    setNumber(
      `${prefix}-plateau_probability`,
      rec.plateau_probability,
      fmtF(rec.plateau_probability, 3),
    );
    setNumber(`${prefix}-p_diverge`, rec.p_diverge, fmtF(rec.p_diverge, 3));
  }

  function renderDecisions(v, S, paper) {
    const key = [v.N, v.D, v.group, v.tol].join("|");
    if (!cache || cache.key !== key) {
      const free = decide(S, DATA, null, null);
      cache = { key, free, map: null };
    }
    const { free } = cache;
    const rec = recommendation(S, DATA, v.tol, v.seq_len, free);
    showRecommendation("rec", rec);
    const paperProb = plateauProbability(
      S,
      v.tol,
      Math.log(paper.lr),
      Math.log(paper.batch_tokens),
    );
    setNumber("paper-prob", paperProb, fmtF(paperProb, 3));

    // a setting of one's own: lr, batch or both
    const mine = readMine();
    const err = $("mine-error");
    const out = { mine: null, at_batch: null, at_lr: null };
    const MINE_IDS = ["expected_loss", "cost", "plateau_probability", "p_diverge"];
    for (const id of MINE_IDS) clearNumber(`mine-${id}`);
    for (const id of ["at_batch-lr", "at_batch-cost", "at_lr-batch_tokens", "at_lr-cost"]) {
      clearNumber(id);
    }
    if (mine.errors.length) {
      err.textContent = mine.errors.map((e) => e.message).join("; ");
      err.hidden = false;
    } else {
      err.hidden = true;
      const X = mine.lr === null ? null : Math.log(mine.lr);
      const Y = mine.batch === null ? null : Math.log(mine.batch);
      if (X !== null && Y !== null) {
        out.mine = recommendation(S, DATA, v.tol, v.seq_len, free, X, Y);
        setNumber("mine-expected_loss", out.mine.expected_loss, lossText(out.mine.expected_loss));
        setNumber("mine-cost", out.mine.cost, costText(out.mine));
        setNumber(
          "mine-plateau_probability",
          out.mine.plateau_probability,
          fmtF(out.mine.plateau_probability, 3),
        );
        setNumber("mine-p_diverge", out.mine.p_diverge, fmtF(out.mine.p_diverge, 3));
      }
      if (Y !== null) {
        out.at_batch = recommendation(S, DATA, v.tol, v.seq_len, free, null, Y);
        setNumber("at_batch-lr", out.at_batch.lr, lrText(out.at_batch.lr));
        setNumber("at_batch-cost", out.at_batch.cost, costText(out.at_batch));
      }
      if (X !== null) {
        out.at_lr = recommendation(S, DATA, v.tol, v.seq_len, free, X, null);
        setNumber(
          "at_lr-batch_tokens",
          out.at_lr.batch_tokens,
          tokensText(out.at_lr.batch_tokens),
          `${si(out.at_lr.batch_tokens)} tokens`,
        );
        setNumber("at_lr-cost", out.at_lr.cost, costText(out.at_lr));
      }
    }
    markInvalid(mine.errors);
    const marks = [
      { kind: "paper", lr: paper.lr, batch: paper.batch_tokens },
      { kind: "rec", lr: rec.lr, batch: rec.batch_tokens },
    ];
    if (mine.lr !== null && mine.batch !== null && !mine.errors.length) {
      marks.push({ kind: "mine", lr: mine.lr, batch: mine.batch });
    }
    return { rec, paperProb, ...out, marks };
  }

  /** The map: the expected loss and the plateau probability over (lr, batch), computed once
      per (N, D, group, tol). */
  function renderMap(v, S, dec) {
    if (!cache.map) cache.map = lossMap(S, v.tol, DATA.map);
    const map = cache.map;
    drawHeatmap($("heatmap"), DATA, map, dec.marks, v.tol, dec.rec.expected_loss);
    drawLegend($("heatmap-legend"), DATA, dec.marks.length > 2, v.tol);
    const top = Math.max(...map.prob.map((r) => Math.max(...r)));
    const event = DATA.vocabulary.plateau.replace("{tol:.2%}", fmtPct(v.tol, 2));
    $("plateau-caption").textContent =
      `Colour: the expected final loss of a run (${S.n} draws; a run that diverges counted at ` +
      `${fmtG(1 + DATA.surface.diverged_excess, 3)}·L*), as its excess over the best ` +
      `choice's. Contours: the plateau probability, ${event}, at 0.5 and 0.9; group ` +
      `${pyRepr(v.group)}.` +
      (top < 0.9 ? ` No setting on the map reaches 0.9 (the highest is ${fmtF(top, 2)}).` : "");
    return {
      lr: map.lr,
      batch_tokens: map.batch,
      expected_loss: map.expected,
      plateau_probability: map.prob,
    };
  }

  function update() {
    scheduled = false;
    window.planner.renders += 1;
    const { values, errors } = readInputs();
    markInvalid(errors);
    updateShare();
    showErrors(errors);
    const results = $("results");
    const plateau = $("plateau");
    if (errors.length) {
      renderId += 1; // a map still to come is of inputs that no longer hold
      clearNumbers(results);
      clearNumbers(plateau);
      $("heatmap").replaceChildren();
      $("extrapolation").hidden = true;
      results.hidden = true;
      plateau.hidden = true;
      window.planner.last = { errors: errors.map((e) => ({ field: e.field, message: e.message })) };
      document.body.dataset.state = "invalid";
      return;
    }
    const t0 = performance.now();
    const S = surfaceAt(DATA, values.group, values.N, values.D);
    const { pred, paper, star } = renderPrediction(values, S);
    const t1 = performance.now();
    const dec = renderDecisions(values, S, paper);
    const t2 = performance.now();
    results.hidden = false;
    plateau.hidden = false;
    window.planner.last = {
      inputs: values,
      prediction: pred,
      best_loss: star,
      paper,
      recommendation: dec.rec,
      paper_probability: dec.paperProb,
      mine: dec.mine,
      at_batch: dec.at_batch,
      at_lr: dec.at_lr,
      map: null,
    };
    if (firstRender) window.plannerTiming.numbersShown = performance.now();
    // the numbers are on the screen; the map follows in a task of its own (when it is not
    // cached), so that they show while it is computed
    const id = ++renderId;
    const last = window.planner.last;
    const finish = () => {
      if (id !== renderId) return; // the inputs changed meanwhile
      const t3 = performance.now();
      last.map = renderMap(values, S, dec);
      window.plannerTiming.lastUpdate = {
        prediction: t1 - t0,
        decisions: t2 - t1,
        map: performance.now() - t3,
      };
      document.body.dataset.state = "ready";
      if (firstRender) {
        firstRender = false;
        window.plannerTiming.mapShown = performance.now();
      }
    };
    if (cache.map) {
      finish();
    } else {
      $("heatmap").replaceChildren(); // no map of other inputs meanwhile
      document.body.dataset.state = "computing";
      setTimeout(finish, 0);
    }
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(update);
    }
  }

  function fail(message) {
    const box = $("errors");
    const p = document.createElement("p");
    p.className = "message";
    p.textContent = message;
    box.replaceChildren(p);
    box.hidden = false;
    document.body.dataset.state = "failed";
  }

  function setUp(data) {
    DATA = data;
    DATA.draws = decodeDraws(DATA.draws);
    window.plannerTiming.drawsReady = performance.now();
    const root = document.documentElement.style;
    const c = DATA.style.colors;
    root.setProperty("--role-posterior", c.posterior);
    root.setProperty("--role-paper", c.paper);
    root.setProperty("--role-recommend", c.recommend);
    root.setProperty("--role-plateau", c.plateau);
    root.setProperty("--role-observed", c.observed);
    $("version").textContent = DATA.package_version;

    const groupSel = $("group");
    for (const g of DATA.groups) groupSel.append(new Option(g.label, g.name));
    const kindSel = $("kind");
    for (const k of DATA.kinds) kindSel.append(new Option(`${k.name}: ${k.short}`, k.name));
    for (const k of DATA.kinds_unavailable || []) {
      // a kind the page cannot compute: listed, disabled, saying why
      const option = new Option(`${k.name}: ${k.short} (not on this page)`, k.name);
      option.disabled = true;
      option.title = k.reason;
      kindSel.append(option);
    }
    const params = new URLSearchParams(location.search);
    const defaults = DATA.defaults;
    for (const id of [...FIELDS, ...MINE]) {
      const given = params.get(id);
      const value = given !== null ? given : defaults[id] !== undefined ? String(defaults[id]) : "";
      const input = $(id);
      if (input.tagName === "SELECT" && ![...input.options].some((o) => o.value === value)) {
        // keep an unknown value from the URL visible, so that its message names it
        input.append(new Option(value, value));
      }
      input.value = value;
      input.addEventListener("input", schedule);
      input.addEventListener("change", schedule);
    }
    $("heatmap").addEventListener("click", (event) => {
      const svg = $("heatmap");
      if (!svg.__invert) return;
      const pt = new DOMPoint(event.clientX, event.clientY).matrixTransform(
        svg.getScreenCTM().inverse(),
      );
      const [x, y] = svg.__invert(pt.x, pt.y);
      $("lr").value = fmtG(Math.exp(x), 3);
      $("batch").value = fmtG(Math.exp(y), 3);
      schedule();
    });
    $("setup").textContent = `(for ${DATA.setup})`;
    const src = DATA.source;
    if (!src.converged) {
      const box = $("unconverged");
      box.textContent =
        `${src.name} failed its convergence checks and was exported with --allow-unconverged: ` +
        "its answers may be wrong.";
      box.hidden = false;
    }
    const python = src.shipped
      ? `load_default("loss").subsample(${DATA.n_draws}, seed=${DATA.seed})`
      : `load(${pyRepr(src.name)}).subsample(${DATA.n_draws}, seed=${DATA.seed})`;
    $("about").textContent =
      `Computed in your browser from ${DATA.n_draws} draws of ${src.name} (the ` +
      `${src.model} model, surface ${src.surface}, best loss ${src.best_law}; bayes-steplaw ` +
      `${DATA.package_version}, written by bayes-steplaw export-web with seed ${DATA.seed}). ` +
      `Python and the CLI give the same numbers on the same draws: posterior = ${python}, ` +
      `seed=${DATA.seed}. Against all of the posterior's draws, a probability here carries ` +
      `the Monte Carlo error of ${DATA.n_draws} draws (a standard error of ` +
      `${fmtF(0.5 / Math.sqrt(DATA.n_draws), 3)} at most).`;
    update();
  }

  window.planner = { last: null, renders: 0 };
  window.plannerTiming = { started };

  function start() {
    fetch(DATA_URL)
      .then((r) => {
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return r.json();
      })
      .then(
        (data) => {
          window.plannerTiming.dataLoaded = performance.now();
          if (
            data.format !== FORMAT ||
            data.format_version !== FORMAT_VERSION ||
            data.encoding !== ENCODING
          ) {
            fail(
              `${DATA_URL} is not planner data of format ${FORMAT} v${FORMAT_VERSION}; rerun bayes-steplaw export-web`,
            );
            return;
          }
          setUp(data);
        },
        (e) => {
          const where =
            location.protocol === "file:"
              ? " Browsers do not let a page opened from disk read files beside it: open the page from the documentation site, or serve the folder with python -m http.server."
              : "";
          fail(`The posterior draws (${DATA_URL}) could not be loaded: ${e.message}.${where}`);
        },
      );
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
