/* The planner page's map (docs/planner.html): an SVG of the expected loss over (lr, batch),
   as its excess over the best choice's, with the plateau probability's contours, drawn as the
   package's plots draw (bayes_steplaw.plots: viridis, the Okabe-Ito roles, log ticks labelled
   "2e-3" and "4M"); the colours come from planner.json. */
"use strict";

window.PlannerMap = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const { fmtPct, si, fmtLrTick, contourSegments } = window.PlannerCore;

  function el(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hexToRgb(hex) {
    const v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }

  function colour(colorStops, p) {
    const t = Math.min(Math.max(p, 0), 1) * (colorStops.length - 1);
    const i = Math.min(Math.floor(t), colorStops.length - 2);
    const f = t - i;
    return colorStops[i].map((c, m) => Math.round(c + f * (colorStops[i + 1][m] - c)));
  }

  function logTicks(lo, hi) {
    const decades = Math.log10(hi / lo);
    const subs = decades > 4 ? [1] : decades > 1.3 ? [1, 2, 5] : [1, 1.5, 2, 3, 5, 7];
    const ticks = [];
    for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e++) {
      for (const s of subs) {
        const v = s * 10 ** e;
        if (v >= lo && v <= hi) ticks.push(v);
      }
    }
    return ticks;
  }

  const PLOT = { left: 74, top: 14, width: 466, height: 380 };
  // the colour scale: the expected loss's excess over the best choice's, 0.01% to 10%, log
  const EXCESS_RANGE = [-4, -1];

  /** Position on the colour scale (0: at most 0.01% above the best; 1: 10% or more). */
  function excessLevel(excess) {
    const [lo, hi] = EXCESS_RANGE;
    if (!(excess > 10 ** lo)) return Number.isNaN(excess) ? 1 : 0;
    return Math.min((Math.log10(excess) - lo) / (hi - lo), 1);
  }

  /** The map into `svg`: the expected loss's excess over `best` (the best choice's expected
      loss; reversed viridis, log scale), the plateau probability's 0.5 and 0.9 contours, log
      axes labelled as the plots label them, a colorbar and the markers `marks`. */
  function drawHeatmap(svg, data, grid, marks, tol, best) {
    const colorStops = data.style.colormap.stops.map(hexToRgb).reverse();
    svg.replaceChildren();
    const n = grid.xs.length;
    const dx = grid.xs[1] - grid.xs[0];
    const dy = grid.ys[1] - grid.ys[0];
    const x0 = grid.xs[0] - dx / 2,
      x1 = grid.xs[n - 1] + dx / 2;
    const y0 = grid.ys[0] - dy / 2,
      y1 = grid.ys[n - 1] + dy / 2;
    const px = (x) => PLOT.left + ((x - x0) / (x1 - x0)) * PLOT.width;
    const py = (y) => PLOT.top + PLOT.height - ((y - y0) / (y1 - y0)) * PLOT.height;
    svg.__invert = (sx, sy) => [
      x0 + ((sx - PLOT.left) / PLOT.width) * (x1 - x0),
      y0 + ((PLOT.top + PLOT.height - sy) / PLOT.height) * (y1 - y0),
    ];

    const canvas = document.createElement("canvas");
    canvas.width = n;
    canvas.height = n;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(n, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const [r, g, b] = colour(colorStops, excessLevel(grid.expected[i][j] / best - 1));
        const o = ((n - 1 - i) * n + j) * 4;
        img.data[o] = r;
        img.data[o + 1] = g;
        img.data[o + 2] = b;
        img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    const defs = el("defs");
    const clip = el("clipPath", { id: "plot-area" });
    clip.append(el("rect", { x: PLOT.left, y: PLOT.top, width: PLOT.width, height: PLOT.height }));
    defs.append(clip);
    svg.append(defs);
    svg.append(
      el("image", {
        class: "field",
        href: canvas.toDataURL(),
        x: PLOT.left,
        y: PLOT.top,
        width: PLOT.width,
        height: PLOT.height,
        preserveAspectRatio: "none",
      }),
    );

    const overlay = el("g", { "clip-path": "url(#plot-area)", "pointer-events": "none" });
    const plateau = data.style.colors.plateau;
    // 0.9: the plateau region in the plots' plateau colour; 0.5: white dashes, which read on
    // the mid-viridis greens where that contour runs
    for (const [level, stroke, dash, width] of [
      [0.5, "#fff", "6 4", 1.6],
      [0.9, plateau, "", 2.4],
    ]) {
      const segs = contourSegments(grid.xs, grid.ys, grid.prob, level);
      const d = segs
        .map(
          ([a, b]) =>
            `M${px(a[0]).toFixed(1)} ${py(a[1]).toFixed(1)}L${px(b[0]).toFixed(1)} ${py(b[1]).toFixed(1)}`,
        )
        .join("");
      if (d) {
        overlay.append(
          el("path", {
            d,
            fill: "none",
            stroke,
            "stroke-width": width,
            "stroke-dasharray": dash,
            "stroke-linecap": "round",
            class: `contour contour-${level}`,
          }),
        );
      }
    }
    svg.append(overlay);

    // axes: log ticks labelled as the plots label them
    const axes = el("g", { class: "axes" });
    axes.append(
      el("rect", {
        class: "frame",
        x: PLOT.left,
        y: PLOT.top,
        width: PLOT.width,
        height: PLOT.height,
        fill: "none",
      }),
    );
    for (const v of logTicks(Math.exp(x0), Math.exp(x1))) {
      const x = px(Math.log(v));
      const t = el("g", { class: "tick" });
      t.append(
        el("line", { x1: x, x2: x, y1: PLOT.top + PLOT.height, y2: PLOT.top + PLOT.height + 5 }),
      );
      t.append(
        el("text", { x, y: PLOT.top + PLOT.height + 19, "text-anchor": "middle" }, fmtLrTick(v)),
      );
      axes.append(t);
    }
    for (const v of logTicks(Math.exp(y0), Math.exp(y1))) {
      const y = py(Math.log(v));
      const t = el("g", { class: "tick" });
      t.append(el("line", { x1: PLOT.left - 5, x2: PLOT.left, y1: y, y2: y }));
      t.append(el("text", { x: PLOT.left - 8, y: y + 4, "text-anchor": "end" }, si(v)));
      axes.append(t);
    }
    axes.append(
      el(
        "text",
        {
          class: "axis-label",
          x: PLOT.left + PLOT.width / 2,
          y: PLOT.top + PLOT.height + 40,
          "text-anchor": "middle",
        },
        "peak learning rate",
      ),
    );
    axes.append(
      el(
        "text",
        {
          class: "axis-label",
          transform: `translate(16 ${PLOT.top + PLOT.height / 2}) rotate(-90)`,
          "text-anchor": "middle",
        },
        "batch size (tokens)",
      ),
    );

    // colorbar
    const cbX = PLOT.left + PLOT.width + 22;
    const grad = el("linearGradient", { id: "cbar", x1: 0, y1: 0, x2: 0, y2: 1 });
    data.style.colormap.stops.forEach((c, i, all) =>
      grad.append(el("stop", { offset: i / (all.length - 1), "stop-color": c })),
    );
    defs.append(grad);
    axes.append(
      el("rect", {
        x: cbX,
        y: PLOT.top,
        width: 14,
        height: PLOT.height,
        fill: "url(#cbar)",
        class: "frame",
      }),
    );
    const [lo, hi] = EXCESS_RANGE;
    for (let e = lo; e <= hi; e++) {
      const y = PLOT.top + PLOT.height * (1 - (e - lo) / (hi - lo));
      axes.append(
        el("line", {
          x1: cbX + 14,
          x2: cbX + 18,
          y1: y,
          y2: y,
          stroke: "currentColor",
          class: "cbar-tick",
        }),
      );
      const label = `${e === lo ? "≤ " : e === hi ? "≥ " : ""}${fmtPct(10 ** e, Math.max(0, -e - 2))}`;
      axes.append(el("text", { x: cbX + 21, y: y + 4 }, label));
    }
    axes.append(
      el(
        "text",
        {
          class: "axis-label",
          transform: `translate(${cbX + 70} ${PLOT.top + PLOT.height / 2}) rotate(90)`,
          "text-anchor": "middle",
        },
        "expected loss above the best choice's",
      ),
    );
    svg.append(axes);

    // markers: the plots' roles (recommendation: open green diamond; paper: vermillion X)
    const markers = el("g", { "clip-path": "url(#plot-area)", class: "markers" });
    const colors = data.style.colors;
    for (const m of marks) {
      if (!m) continue;
      const cx = px(Math.log(m.lr));
      const cy = py(Math.log(m.batch));
      if (m.kind === "rec") {
        const d = `M${cx} ${cy - 10}L${cx + 10} ${cy}L${cx} ${cy + 10}L${cx - 10} ${cy}Z`;
        markers.append(el("path", { d, fill: "none", stroke: "#fff", "stroke-width": 5 }));
        markers.append(
          el("path", {
            d,
            fill: "none",
            stroke: colors.recommend,
            "stroke-width": 2.6,
            class: "mark-rec",
          }),
        );
      } else if (m.kind === "paper") {
        const s = 6;
        const d = `M${cx - s} ${cy - s}L${cx + s} ${cy + s}M${cx - s} ${cy + s}L${cx + s} ${cy - s}`;
        markers.append(
          el("path", { d, stroke: "#fff", "stroke-width": 6, "stroke-linecap": "round" }),
        );
        markers.append(
          el("path", {
            d,
            stroke: colors.paper,
            "stroke-width": 3.2,
            "stroke-linecap": "round",
            class: "mark-paper",
          }),
        );
      } else {
        markers.append(
          el("circle", {
            cx,
            cy,
            r: 6,
            fill: colors.observed,
            stroke: "#fff",
            "stroke-width": 2,
            class: "mark-mine",
          }),
        );
      }
    }
    svg.append(markers);
  }

  function legendItem(svgInner, label) {
    const span = document.createElement("span");
    span.innerHTML = `<svg width="22" height="14" viewBox="0 0 22 14" aria-hidden="true">${svgInner}</svg>`;
    span.append(document.createTextNode(label));
    return span;
  }

  /** The map's legend into `box`, in the markers' colours. */
  function drawLegend(box, data, hasMine, tol) {
    const c = data.style.colors;
    const items = [
      legendItem(
        `<path d="M11 1L17 7L11 13L5 7Z" fill="none" stroke="${c.recommend}" stroke-width="2.2"/>`,
        "recommendation (least expected loss)",
      ),
      legendItem(
        `<path d="M7 3L15 11M7 11L15 3" stroke="${c.paper}" stroke-width="2.6" stroke-linecap="round"/>`,
        data.paper.label,
      ),
      legendItem(
        `<path d="M1 7H21" stroke="${c.plateau}" stroke-width="2.4"/>`,
        `P(plateau) = 0.9 (tol ${fmtPct(tol, 2)})`,
      ),
      legendItem(
        `<rect width="22" height="14" fill="${data.style.colormap.stops[20]}"/><path d="M1 7H21" stroke="#fff" stroke-width="1.6" stroke-dasharray="5 3"/>`,
        "P(plateau) = 0.5",
      ),
    ];
    if (hasMine) {
      items.push(
        legendItem(
          `<circle cx="11" cy="7" r="5" fill="${c.observed}" stroke="#fff" stroke-width="1.5"/>`,
          "your setting",
        ),
      );
    }
    box.replaceChildren(...items);
  }

  return { drawHeatmap, drawLegend };
})();
