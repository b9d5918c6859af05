/* The planner page (docs/planner.html): inputs, the URL, the numbers, errors. The
   computations, each the Python one on the same draws, are in planner_core.js, the plateau map
   in planner_map.js; the data are _static/planner.json, written by `bayes-steplaw export-web`
   (bayes_steplaw/web.py). */
"use strict";

(() => {
  const DATA_URL = "_static/planner.json";
  const FORMAT = "bayes-steplaw-planner";
  const FORMAT_VERSION = 1;
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
    predict,
    paperPoint,
    bowl,
    plateauProbability,
    plateauGrid,
    recommend,
  } = window.PlannerCore;
  const { drawHeatmap, drawLegend } = window.PlannerMap;
  let DATA = null;

  // ------------------------------------------------------------------ the page
  const $ = (id) => document.getElementById(id);
  const FIELDS = ["N", "D", "seq_len", "group", "kind", "prob", "tol"];
  const MINE = ["lr", "batch"];
  let lastGrid = null; // {key, grid, g, rec}
  let firstRender = true;
  let scheduled = false;

  function setNumber(id, value, text, title) {
    const el = $(id);
    el.dataset.value = String(value);
    el.textContent = text;
    if (title) el.title = title;
    else el.removeAttribute("title");
  }

  function clearNumbers(root) {
    for (const el of root.querySelectorAll("[data-value]")) {
      delete el.dataset.value;
      el.textContent = "";
      el.removeAttribute("title");
    }
  }

  function raw(id) {
    return $(id).value;
  }

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
      if (missing)
        throw new InputError(
          "kind",
          `kind ${pyRepr(missing.name)} is not available here: ${missing.reason}`,
        );
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

  function readMine() {
    const lrText = raw("lr").trim();
    const bsText = raw("batch").trim();
    if (!lrText && !bsText) return { empty: true, errors: [] };
    const errors = [];
    const out = { empty: false, errors };
    try {
      out.lr = parseQuantity(raw("lr"), "lr", "lr");
    } catch (e) {
      errors.push(e);
    }
    try {
      out.batch = parseQuantity(raw("batch"), "batch", "batch");
    } catch (e) {
      errors.push(e);
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

  function describe(kind, prob, group) {
    // Prediction.describe(prob)
    const what = DATA.kinds.find((k) => k.name === kind).description;
    return `posterior median and ${fmtPct(prob, 0)} interval of ${what}, group ${pyRepr(group)}`;
  }

  function renderPrediction(v) {
    const pred = predict(DATA, v.N, v.D, v.group, v.kind, v.seq_len, v.prob);
    const paper = paperPoint(DATA, v.N, v.D, v.seq_len);
    for (const name of ["lr", "batch_tokens", "batch_sequences"]) {
      for (const suffix of ["", "_lower", "_upper"]) {
        const value = pred[name + suffix];
        const text = name === "lr" ? fmtE(value, 3) : fmtG(value, 4);
        setNumber(
          `out-${name}${suffix}`,
          value,
          text,
          name === "batch_tokens" ? `${si(value)} tokens` : "",
        );
      }
      const p = paper[name];
      setNumber(
        `paper-${name}`,
        p,
        name === "lr" ? fmtE(p, 3) : fmtG(p, 4),
        name === "batch_tokens" ? `${si(p)} tokens` : "",
      );
    }
    $("interval-head").textContent = `${fmtPct(v.prob, 0)} interval (HDI)`;
    $("describe").textContent = `(${describe(v.kind, v.prob, v.group)})`;
    $("method").textContent =
      `Interval: the ${DATA.interval_method.description}. Model: the optimum model, ` +
      `${DATA.n_draws.optimum} draws. Paper's column: the ${DATA.paper.description}.`;
    const notes = [];
    for (const name of ["N", "D"]) {
      const decades = pred[`${name}_decades_outside`];
      if (decades > 0) {
        notes.push(
          `note: ${name} lies ${fmtF(decades, 2)} orders of magnitude outside the fitted data's ${name} range: this is an extrapolation of the law`,
        );
      }
    }
    const box = $("extrapolation");
    if (notes.length) {
      const opt = DATA.optimum;
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
      span.textContent = `The fitted data span N ${si(opt.N_range[0])} to ${si(opt.N_range[1])} and D ${si(opt.D_range[0])} to ${si(opt.D_range[1])} tokens; the plateau map below extrapolates alike.`;
      box.replaceChildren(title, ...paras, span);
      box.hidden = false;
    } else {
      box.hidden = true;
      box.replaceChildren();
    }
    return { pred, paper };
  }

  function renderPlateau(v, paper) {
    const key = [v.N, v.D, v.group, v.tol].join("|");
    if (!lastGrid || lastGrid.key !== key) {
      const g = bowl(DATA, v.N, v.D, v.group);
      lastGrid = {
        key,
        g,
        grid: plateauGrid(g, v.tol, DATA.landscape.grid),
        rec: recommend(g, v.tol, v.seq_len),
      };
    }
    const { g, grid } = lastGrid;
    const rec = { ...lastGrid.rec, batch_sequences: lastGrid.rec.batch_tokens / v.seq_len };
    setNumber("rec-lr", rec.lr, fmtE(rec.lr, 3));
    setNumber(
      "rec-batch_tokens",
      rec.batch_tokens,
      fmtG(rec.batch_tokens, 4),
      `${si(rec.batch_tokens)} tokens`,
    );
    setNumber("rec-batch_sequences", rec.batch_sequences, fmtG(rec.batch_sequences, 4));
    setNumber("rec-loss", rec.expected_relative_loss, fmtPct(rec.expected_relative_loss, 3));
    setNumber("rec-prob", rec.plateau_probability, fmtF(rec.plateau_probability, 3));
    const paperProb = plateauProbability(
      g,
      v.tol,
      Math.log(paper.lr),
      Math.log(paper.batch_tokens),
    );
    setNumber("paper-prob", paperProb, fmtF(paperProb, 3));

    const mine = readMine();
    let mineMark = null;
    let mineProb = null;
    const err = $("mine-error");
    if (mine.empty) {
      err.hidden = true;
      $("mine-prob").textContent = "–";
      delete $("mine-prob").dataset.value;
    } else if (mine.errors.length) {
      err.textContent = mine.errors.map((e) => e.message).join("; ");
      err.hidden = false;
      $("mine-prob").textContent = "–";
      delete $("mine-prob").dataset.value;
    } else {
      err.hidden = true;
      mineProb = plateauProbability(g, v.tol, Math.log(mine.lr), Math.log(mine.batch));
      setNumber("mine-prob", mineProb, fmtF(mineProb, 3));
      mineMark = { kind: "mine", lr: mine.lr, batch: mine.batch };
    }
    markInvalid(mine.errors || []);
    drawHeatmap(
      $("heatmap"),
      DATA,
      grid,
      [
        { kind: "paper", lr: paper.lr, batch: paper.batch_tokens },
        { kind: "rec", lr: rec.lr, batch: rec.batch_tokens },
        mineMark,
      ],
      v.tol,
    );
    drawLegend($("heatmap-legend"), DATA, Boolean(mineMark));
    const top = Math.max(...grid.prob.map((row) => Math.max(...row)));
    $("plateau-caption").textContent =
      `Probability that a run's expected final loss lies within ${fmtPct(v.tol, 2)} of the ` +
      `setting's best (plateau_probability, run noise excluded), from ${g.n} draws of the ` +
      `landscape model, group ${pyRepr(v.group)}. Contours at P = 0.5 and 0.9.` +
      (top < 0.9 ? ` No setting on the map reaches P = 0.9 (the highest is ${fmtF(top, 2)}).` : "");
    return { rec, paperProb, mineProb, grid };
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
    try {
      const t0 = performance.now();
      const { pred, paper } = renderPrediction(values);
      const t1 = performance.now();
      const land = renderPlateau(values, paper);
      window.plannerTiming.lastUpdate = { prediction: t1 - t0, plateau: performance.now() - t1 };
      results.hidden = false;
      plateau.hidden = false;
      window.planner.last = {
        inputs: values,
        prediction: pred,
        paper,
        recommendation: land.rec,
        paper_probability: land.paperProb,
        mine_probability: land.mineProb,
        heatmap: { lr: land.grid.lr, batch_tokens: land.grid.batch, probability: land.grid.prob },
      };
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      markInvalid([e]);
      showErrors([e]);
      clearNumbers(results);
      clearNumbers(plateau);
      results.hidden = true;
      plateau.hidden = true;
      document.body.dataset.state = "invalid";
      return;
    }
    document.body.dataset.state = "ready";
    if (firstRender) {
      firstRender = false;
      window.plannerTiming.numbersShown = performance.now();
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
    for (const [k, v] of Object.entries(DATA.draws)) DATA.draws[k] = Float64Array.from(v);
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
    for (const k of DATA.kinds) {
      kindSel.append(new Option(`${k.name}: ${k.description.split(":")[0]}`, k.name));
    }
    for (const k of DATA.kinds_unavailable || []) {
      // a kind this export's posterior cannot predict: listed, disabled, saying why
      const option = new Option(
        `${k.name}: ${k.description.split(":")[0]} (not available)`,
        k.name,
      );
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
    $("about").textContent =
      `Computed in your browser from ${DATA.n_draws.optimum} draws of the optimum model and ` +
      `${DATA.n_draws.landscape} of the landscape model shipped with bayes-steplaw ` +
      `${DATA.package_version} (written by bayes-steplaw export-web; seed ${DATA.seed}). Python ` +
      `gives the same numbers on the same draws: load_default("optimum").subsample(` +
      `${DATA.n_draws.optimum}, seed=${DATA.seed}).predict(N, D, group=..., kind=...).`;
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
          if (data.format !== FORMAT || data.format_version !== FORMAT_VERSION) {
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
