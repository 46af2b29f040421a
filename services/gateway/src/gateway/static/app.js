// Order Execution Engine dashboard. Plain ES module, no build step, no framework.
// Everything it loads comes from the gateway (uPlot is vendored under /static/vendor).
//
// Data flow: GET /api/orders seeds the table, then the notifier's firehose
// (ws://<notifier>/ws/orders?after=<the list's asOfPosition>) keeps it live from
// exactly where the list left off. Frames are deduplicated by (orderId, version);
// on reconnect the firehose resumes with ?after=<last position>.

const TERMINAL = new Set(["confirmed", "failed"]);
const VENUES = ["raydium", "meteora"];
const MAX_ROWS = 300; // rows kept in the table (newest first)
const MAX_ORDERS = 5000; // orders kept in memory (the charts keep only counts, by second)
const MAX_LOG = 400; // lines in the event log
const HISTORY_S = 180; // x-range of the charts
const WINDOW_S = 60; // sliding window for percentiles and venue share
const BURST_CONCURRENCY = 8;
const BACKFILL_CONCURRENCY = 2; // event-history fetches for orders first seen mid-stream
const MAX_BACKFILL_QUEUE = 200;
const CLOSE_BAD_REQUEST = 4400; // the notifier refused the cursor
const API_TIMEOUT_MS = 10_000; // a gateway that hangs fails the request instead of piling them up
const STALE_CHECK_MS = 15_000; // how often a quiet firehose is checked against the log
// A socket that opens is not yet a connection that works: the notifier accepts
// before it reads the store, and closes at once (1013) while the store is away.
// The back-off starts over only once a frame arrives or the socket stays open this long.
const STABLE_OPEN_MS = 10_000;

// ---------------------------------------------------------------------------
// small helpers

const $ = (id) => document.getElementById(id);

/** Create an element: h("td", {class: "num", dataset: {testid: "x"}}, "text", child). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") el.style.cssText = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const parseTime = (iso) => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : null;
};

const pad = (n, w = 2) => String(n).padStart(w, "0");
function clock(ms) {
  if (ms == null) return "—";
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function duration(ms) {
  if (ms == null || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)}m ${Math.round((ms % 60_000) / 1000)}s`;
}

function age(ms) {
  if (ms == null) return "—";
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// The whole digits are grouped by BigInt's toLocaleString; the decimal mark to match.
const DECIMAL_MARK = new Intl.NumberFormat().formatToParts(0.5).find((p) => p.type === "decimal")?.value ?? ".";

/**
 * Decimal strings arrive exact, in plain digits; show them compactly, from the
 * string itself (a Number would lose digits, and writes small ones with exponents),
 * and keep the exact value in a title. At or above 1: every whole digit, grouped,
 * and up to 4 decimals (1500000.75 → 1,500,000.75). Below 1: 4 significant
 * digits, at least 6 decimals (0.00000013 → 0.00000013, 0.123456789 → 0.123457).
 * Rounded half up; trailing zeros dropped (0.0004 → 0.0004).
 */
function num(value) {
  if (value === undefined || value === null || value === "") return "—";
  const text = typeof value === "number" ? value.toLocaleString("en-US", { useGrouping: false, maximumFractionDigits: 20 }) : String(value).trim();
  const parts = /^([-+]?)(\d*)(?:\.(\d*))?$/.exec(text);
  if (!parts || (!parts[2] && !parts[3])) return String(value);
  const [, sign, whole = "", fraction = ""] = parts;
  const integer = whole.replace(/^0+(?=\d)/, "") || "0";
  const leadingZeros = integer === "0" ? (/^0*/.exec(fraction)?.[0].length ?? 0) : 0;
  const decimals = integer === "0" ? Math.max(6, leadingZeros + 4) : 4;
  // Round to `decimals` as one integer of digits, so a carry runs into the whole part.
  let digits = BigInt(integer + fraction.padEnd(decimals, "0").slice(0, decimals));
  if ((fraction[decimals] ?? "0") >= "5") digits += 1n;
  const scaled = digits.toString().padStart(decimals + 1, "0");
  const wholeOut = scaled.slice(0, scaled.length - decimals);
  const fractionOut = scaled.slice(scaled.length - decimals).replace(/0+$/, "");
  const zero = digits === 0n;
  const grouped = BigInt(wholeOut).toLocaleString();
  return `${sign === "-" && !zero ? "-" : ""}${grouped}${fractionOut ? `${DECIMAL_MARK}${fractionOut}` : ""}`;
}
const numCell = (value, cls = "num") => h("td", { class: cls, title: value ?? "" }, num(value));

/**
 * A fraction (0.0042) as the percent it is (0.42). Plain digits, as the API sends,
 * are shifted as a string so the exact title stays exact.
 */
function fractionAsPercent(value) {
  if (value === undefined || value === null || value === "") return value;
  const digits = /^(-?)(\d+)(?:\.(\d*))?$/.exec(String(value));
  if (!digits) {
    const n = Number(value);
    return Number.isFinite(n) ? String(n * 100) : value;
  }
  const [, sign, whole, fraction = ""] = digits;
  const padded = fraction.padEnd(2, "0");
  const integer = (whole + padded.slice(0, 2)).replace(/^0+(?=\d)/, "");
  const rest = padded.slice(2).replace(/0+$/, "");
  return `${sign}${integer}${rest ? `.${rest}` : ""}`;
}

const shortId = (id) => (id ? String(id).slice(0, 8) : "");
/** A share in bps as the percent it is, up to two decimals: 9960 → 99.6%, 40 → 0.4%
 * (as the router's reason writes it; whole percents would make these 100% and 0%). */
const pct = (bps) => `${Math.round(Number(bps)) / 100}%`;

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const rank = Math.ceil(p * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

async function api(path, options = {}) {
  let response;
  let text;
  try {
    response = await fetch(path, {
      headers: { Accept: "application/json", ...(options.body ? { "Content-Type": "application/json" } : {}) },
      signal: AbortSignal.timeout(API_TIMEOUT_MS),
      ...options,
    });
    text = await response.text();
  } catch (error) {
    if (error?.name === "TimeoutError") throw new Error(`no answer within ${API_TIMEOUT_MS / 1000} s`);
    throw error;
  }
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { detail: text };
    }
  }
  if (!response.ok) {
    const error = new Error(describeError(response.status, body));
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function describeError(status, body) {
  const detail = body?.detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const loc = (d.loc || []).filter((part) => part !== "body").join(".");
        return loc ? `${loc}: ${d.msg}` : d.msg;
      })
      .join("; ");
  }
  if (typeof detail === "string") return `${status}: ${detail}`;
  return `HTTP ${status}`;
}

// ---------------------------------------------------------------------------
// state

/** @type {Map<string, object>} orderId -> order view model */
const orders = new Map();
let lastPosition = null; // the firehose position the table reflects; null until seeded
let selectedId = null;
let pairs = [];

function blankOrder(orderId) {
  return {
    orderId,
    status: "pending",
    tokenPair: null,
    side: null,
    amount: null,
    slippageBps: null,
    venue: null,
    legs: null, // [{venue, bps}] of the latest route
    legsVersion: 0, // the version legs come from: an older frame never replaces them
    failureVersion: 0, // likewise for failureReason
    finalPrice: null,
    txHash: null,
    attempts: null,
    failureReason: null,
    createdAt: null, // ms
    updatedAt: null, // ms
    terminalAt: null, // ms, when the terminal status happened
    version: 0, // highest stream version applied
    frames: new Map(), // version -> frame
    detail: null, // GET /api/orders/{id}
    countedAt: null, // ms: the completion the charts counted (its second's bucket)
    latencyCounted: false, // its latency too (known once createdAt is)
  };
}

function getOrder(orderId) {
  let order = orders.get(orderId);
  if (!order) {
    order = blankOrder(orderId);
    orders.set(orderId, order);
  }
  return order;
}

/** Fold one WebSocket/event frame into the order. Returns false for a duplicate. */
function applyFrame(frame) {
  if (!frame || !frame.orderId || frame.version == null) return false;
  const order = getOrder(frame.orderId);
  if (order.frames.has(frame.version)) return false;
  order.frames.set(frame.version, frame);
  const at = parseTime(frame.at);

  if (frame.type === "OrderAccepted") {
    order.tokenPair = frame.tokenPair ?? order.tokenPair;
    order.side = frame.side ?? order.side;
    order.amount = frame.amount ?? order.amount;
    order.slippageBps = frame.slippageBps ?? order.slippageBps;
    if (at != null) order.createdAt = at;
  } else if (frame.type === "RouteSelected" || frame.type === "TransactionSubmitted") {
    // A transaction re-quoted before building carries its own plan, not the routed one.
    setLegs(order, frame.plan?.legs, frame.version);
  } else if (frame.type === "SwapConfirmed") {
    order.txHash = frame.txHash ?? order.txHash;
    order.finalPrice = frame.finalPrice ?? order.finalPrice;
    setLegs(order, frame.legs, frame.version);
  }
  if (frame.type === "RetryScheduled" && frame.version >= order.legsVersion) {
    // The next attempt routes afresh: the failed one's route and transaction are not its.
    order.legs = null;
    order.legsVersion = frame.version;
    order.venue = null;
    order.txHash = null;
  }
  if (frame.type === "OrderFailed" || frame.type === "RetryScheduled") {
    // History fetched for the details panel can arrive after newer live frames.
    const reason = frame.reason ?? frame.failure;
    if (reason != null && frame.version >= order.failureVersion) {
      order.failureReason = reason;
      order.failureVersion = frame.version;
    }
  }
  if (frame.attempt != null) order.attempts = Math.max(order.attempts ?? 0, frame.attempt);

  if (frame.version > order.version) {
    order.version = frame.version;
    if (frame.status) order.status = frame.status;
    if (at != null) order.updatedAt = at;
  }
  if (TERMINAL.has(frame.status) && at != null) order.terminalAt = at;
  if (order.createdAt == null && at != null && frame.version === 1) order.createdAt = at;
  countCompletion(order);
  return true;
}

function setLegs(order, legs, version) {
  if (!Array.isArray(legs) || !legs.length || version < order.legsVersion) return;
  order.legs = legs.map((l) => ({ venue: l.venue, bps: l.bps }));
  order.legsVersion = version;
}

/** Merge a row of GET /api/orders. Frames already applied win over the list. */
function applySummary(row) {
  if (!row?.orderId) return;
  const order = getOrder(row.orderId);
  const fill = (key, value) => {
    if (order[key] == null && value != null) order[key] = value;
  };
  fill("tokenPair", row.tokenPair);
  fill("side", row.side);
  fill("amount", row.amount);
  fill("venue", row.venue);
  fill("finalPrice", row.finalPrice);
  fill("txHash", row.txHash);
  fill("attempts", row.attempts);
  fill("failureReason", row.failureReason);
  fill("createdAt", parseTime(row.createdAt));
  fill("updatedAt", parseTime(row.updatedAt));
  if (row.version != null && row.version > order.version) {
    order.version = row.version;
    order.status = row.status;
  } else if (order.frames.size === 0 || (TERMINAL.has(row.status) && !TERMINAL.has(order.status))) {
    order.status = row.status ?? order.status;
  }
  if (TERMINAL.has(order.status) && order.terminalAt == null) order.terminalAt = parseTime(row.updatedAt);
  if (!order.legs && row.venue && (row.version ?? 0) >= order.legsVersion) {
    order.legs = parseVenue(row.venue);
    order.legsVersion = row.version ?? 0;
  }
  countCompletion(order);
}

/** The list's venue is a name ("meteora") or a split ("meteora 73% / raydium 27%"). */
function parseVenue(text) {
  const parts = String(text)
    .split("/")
    .map((part) => part.trim().match(/^([a-z0-9_-]+)(?:\s+(\d+(?:\.\d+)?)%)?$/i))
    .filter(Boolean);
  if (!parts.length) return null;
  if (parts.length === 1) return [{ venue: parts[0][1].toLowerCase(), bps: 10000 }];
  return parts.map((m) => ({ venue: m[1].toLowerCase(), bps: Math.round(Number(m[2] ?? 0) * 100) }));
}

/** "raydium 60% / meteora 40%". */
const legsText = (legs) => legs.map((l) => `${l.venue} ${pct(l.bps)}`).join(" / ");

function routeLabel(order) {
  const legs = order.legs;
  if (!legs || !legs.length) return order.venue ?? "";
  const sorted = [...legs].sort((a, b) => b.bps - a.bps);
  if (sorted.length === 1) return sorted[0].venue;
  return legsText(sorted);
}

function trimOrders() {
  if (orders.size <= MAX_ORDERS) return;
  // Drop the oldest tenth at once so the sort is not paid on every new order.
  const victims = [...orders.values()]
    .filter((o) => o.orderId !== selectedId)
    .sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0))
    .slice(0, orders.size - Math.floor(MAX_ORDERS * 0.9));
  for (const o of victims) {
    orders.delete(o.orderId);
    dirtyRows.delete(o.orderId); // a hidden tab renders nothing, so this set would only grow
  }
  tableNeedsSort = true;
}

// ---------------------------------------------------------------------------
// completions feed the charts, one bucket per second of when they happened,
// kept as long as a chart can show them (its HISTORY_S, and the WINDOW_S its
// first point looks back): counts by outcome, latencies, confirmed volume by
// venue. No order is held, so a trimmed one is collected.

const KEEP_S = HISTORY_S + WINDOW_S;
/** @type {Map<number, {ok: number, bad: number, latencies: number[], venues: Object<string, number>}>} second -> bucket */
const buckets = new Map();
/** The points of the windows that end at a second, until a completion lands in one of their seconds. */
const windowPoints = new Map();

/** The bucket of `ms`'s second, or null when no chart shows it any more. */
function bucketAt(ms) {
  const second = Math.floor(ms / 1000);
  if (second <= Math.floor(Date.now() / 1000) - KEEP_S) return null;
  let bucket = buckets.get(second);
  if (!bucket) {
    bucket = { ok: 0, bad: 0, latencies: [], venues: {} };
    buckets.set(second, bucket);
  }
  for (let x = second; x < second + WINDOW_S; x += 1) windowPoints.delete(x); // they change
  return bucket;
}

function countCompletion(order) {
  if (!TERMINAL.has(order.status) || order.terminalAt == null) return;
  let bucket; // looked up once: each lookup clears the windows it falls in
  const counted = () => (bucket ??= bucketAt(order.countedAt));
  if (order.countedAt == null) {
    order.countedAt = order.terminalAt;
    if (counted() && order.status === "confirmed") {
      bucket.ok += 1;
      addVenues(bucket.venues, order.legs);
    } else if (bucket) {
      bucket.bad += 1;
    }
  }
  // An order first seen mid-stream learns when it was created from its history,
  // which may arrive after its end: its latency is counted then.
  if (!order.latencyCounted && order.createdAt != null) {
    order.latencyCounted = true;
    const latency = order.countedAt - order.createdAt;
    if (latency >= 0 && counted()) bucket.latencies.push(latency);
  }
}

/** Confirmed volume by venue, weighting split routes by their legs' bps. */
function addVenues(venues, legs) {
  if (!legs?.length) return;
  const all = legs.reduce((a, l) => a + Number(l.bps || 0), 0) || 1;
  for (const l of legs) venues[l.venue] = (venues[l.venue] ?? 0) + Number(l.bps || 0) / all;
}

// ---------------------------------------------------------------------------
// rendering, batched per animation frame

const dirtyRows = new Set();
let renderQueued = false;
let detailsDirty = false;

function markDirty(orderId) {
  dirtyRows.add(orderId);
  if (orderId === selectedId) detailsDirty = true;
  scheduleRender();
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderTable();
    renderKpis();
    if (detailsDirty) {
      detailsDirty = false;
      renderDetails();
    }
    flushLog();
  });
}

const rowEls = new Map(); // orderId -> <tr>

function statusBadge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

function routeCell(order) {
  const legs = order.legs;
  const label = routeLabel(order);
  const td = h("td", { title: label });
  if (legs && legs.length > 1) {
    const sorted = [...legs].sort((a, b) => b.bps - a.bps);
    const bar = h(
      "span",
      { class: "mini-bar", "aria-hidden": "true" },
      sorted.map((l) => h("i", { class: `bg-${VENUES.includes(l.venue) ? l.venue : "other"}`, style: `width:${l.bps / 100}%` })),
    );
    td.append(h("span", { class: "route-split" }, bar, label));
  } else if (label) {
    td.append(h("span", { class: `v-${label}` }, label));
  }
  return td;
}

function buildRow(order) {
  const tr = h("tr", {
    dataset: { orderId: order.orderId, status: order.status, testid: "order-row" },
    class: order.orderId === selectedId ? "selected" : "",
    tabindex: "0",
  });
  fillRow(tr, order);
  return tr;
}

function fillRow(tr, order) {
  tr.dataset.status = order.status;
  tr.replaceChildren(
    h("td", { dataset: { testid: "status" }, "data-status": order.status }, statusBadge(order.status)),
    h("td", { class: "oid", title: order.orderId }, shortId(order.orderId)),
    h("td", { dataset: { testid: "row-pair" } }, order.tokenPair ?? "—"),
    h("td", { class: order.side ? `side-${order.side}` : "" }, order.side ?? "—"),
    numCell(order.amount),
    routeCell(order),
    h("td", { class: "num", title: order.finalPrice ?? order.failureReason ?? "" }, order.finalPrice != null ? num(order.finalPrice) : order.status === "failed" ? h("span", { class: "muted" }, "—") : ""),
    h("td", { class: "num" }, order.attempts ?? "—"),
    h("td", { class: "num age", dataset: { created: order.createdAt ?? "" } }, age(order.createdAt)),
  );
}

function visible(order) {
  const filter = $("status-filter").value;
  if (!filter) return true;
  if (filter === "active") return !TERMINAL.has(order.status);
  return order.status === filter;
}

let tableNeedsSort = true;
let emptyText = "No orders yet. Submit one on the left."; // the table's, when no order is tracked

function renderTable() {
  const body = $("orders-body");
  // Updates of rows already shown: cheap, in place.
  for (const id of dirtyRows) {
    const tr = rowEls.get(id);
    const order = orders.get(id);
    if (tr && order) {
      const before = tr.dataset.status;
      fillRow(tr, order);
      // A row the filter no longer matches (an in-flight one that finished) goes.
      if (!visible(order)) tableNeedsSort = true;
      if (before !== order.status) {
        tr.classList.remove("flash");
        void tr.offsetWidth; // restart the animation
        tr.classList.add("flash");
      }
    } else {
      tableNeedsSort = true;
    }
  }
  dirtyRows.clear();
  if (!tableNeedsSort) return;
  tableNeedsSort = false;

  const shown = [...orders.values()]
    .filter(visible)
    // Orders first seen mid-stream (no createdAt until their history is fetched)
    // are older than every seeded one: last, not first.
    .sort((a, b) => (b.createdAt ?? -Infinity) - (a.createdAt ?? -Infinity) || (a.orderId < b.orderId ? -1 : 1))
    .slice(0, MAX_ROWS);
  const keep = new Set(shown.map((o) => o.orderId));
  for (const [id, tr] of rowEls) {
    if (!keep.has(id)) {
      tr.remove();
      rowEls.delete(id);
    }
  }
  let previous = null;
  for (const order of shown) {
    let tr = rowEls.get(order.orderId);
    if (!tr) {
      tr = buildRow(order);
      rowEls.set(order.orderId, tr);
    }
    const expectedPosition = previous ? previous.nextSibling : body.firstChild;
    if (tr !== expectedPosition) body.insertBefore(tr, expectedPosition);
    previous = tr;
  }
  const empty = $("orders-empty");
  empty.hidden = shown.length > 0;
  if (!shown.length) {
    const filter = $("status-filter");
    // Orders there are, but the filter hides every one: say so, not "no orders yet".
    empty.textContent =
      orders.size && filter.value
        ? `No ${filter.selectedOptions[0]?.textContent ?? filter.value} orders: the status filter hides all ${orders.size} tracked (choose "all" to see them).`
        : emptyText;
  }
  $("orders-count").textContent = `${shown.length} shown · ${orders.size} tracked`;
}

function renderKpis() {
  let inflight = 0;
  let confirmed = 0;
  let failed = 0;
  for (const o of orders.values()) {
    if (o.status === "confirmed") confirmed += 1;
    else if (o.status === "failed") failed += 1;
    else inflight += 1;
  }
  $("kpi-total").textContent = orders.size;
  $("kpi-inflight").textContent = inflight;
  $("kpi-confirmed").textContent = confirmed;
  $("kpi-failed").textContent = failed;
}

function refreshAges() {
  for (const tr of rowEls.values()) {
    const cell = tr.lastElementChild;
    const created = Number(cell?.dataset.created);
    if (cell && created) cell.textContent = age(created);
  }
}

// ---------------------------------------------------------------------------
// event log

const pendingLog = [];

function logFrame(frame) {
  if ($("log-pause").checked) return;
  pendingLog.push(frame);
  if (pendingLog.length > MAX_LOG) pendingLog.splice(0, pendingLog.length - MAX_LOG);
}

function describeFrame(frame) {
  switch (frame.type) {
    case "OrderAccepted":
      return `accepted ${frame.side ?? ""} ${frame.amount ?? ""} ${frame.tokenPair ?? ""}`;
    case "RoutingStarted":
      return `routing, attempt ${frame.attempt}`;
    case "RouteSelected": {
      const legs = frame.plan?.legs ?? [];
      return `route ${legsText(legs)}`;
    }
    case "TransactionSubmitted": {
      const legs = frame.plan?.legs ?? [];
      const requoted = legs.length ? ` · re-quoted: ${legsText(legs)}` : "";
      return `submitted ${shortId(frame.signature)}${requoted}`;
    }
    case "SwapConfirmed":
      return `confirmed @ ${num(frame.finalPrice)} out ${num(frame.amountOut)}`;
    case "RetryScheduled":
      return `retry in ${frame.delayMs} ms: ${frame.failure ?? ""} ${frame.reason ?? ""}`;
    case "OrderFailed":
      return `failed: ${frame.failure ?? ""} ${frame.reason ?? ""}`;
    default:
      return `${frame.type ?? "?"} ${frame.status ?? ""}`;
  }
}

function flushLog() {
  if (!pendingLog.length) return;
  const list = $("event-log");
  const fragment = document.createDocumentFragment();
  for (let i = pendingLog.length - 1; i >= 0; i -= 1) {
    const frame = pendingLog[i];
    const cls =
      frame.type === "SwapConfirmed" ? "confirmed" : frame.type === "OrderFailed" ? "failed" : frame.type === "RetryScheduled" ? "retry" : "";
    fragment.append(
      h(
        "li",
        { dataset: { orderId: frame.orderId, type: frame.type ?? "" }, title: `${frame.orderId} v${frame.version} #${frame.position ?? "?"}\n${frame.type}: ${describeFrame(frame)}` },
        h("span", { class: "t" }, clock(parseTime(frame.at))),
        h("span", { class: "id" }, shortId(frame.orderId)),
        h("span", { class: `ev ${cls}` }, describeFrame(frame)),
      ),
    );
  }
  pendingLog.length = 0;
  list.prepend(fragment);
  while (list.childElementCount > MAX_LOG) list.lastElementChild.remove();
}

// ---------------------------------------------------------------------------
// details panel

async function openDetails(orderId) {
  selectedId = orderId;
  for (const [id, tr] of rowEls) tr.classList.toggle("selected", id === orderId);
  $("details").hidden = false;
  $("details-id").textContent = orderId;
  $("details-id").title = orderId;
  renderDetails();
  try {
    const [detail, events] = await Promise.all([
      api(`/api/orders/${encodeURIComponent(orderId)}`),
      api(`/api/orders/${encodeURIComponent(orderId)}/events`),
    ]);
    const order = getOrder(orderId);
    order.detail = detail;
    for (const frame of events?.events ?? []) applyFrame(frame);
    if (detail) {
      order.tokenPair ??= detail.tokenPair;
      order.side ??= detail.side;
      order.amount ??= detail.amount;
    }
    markDirty(orderId);
  } catch (error) {
    if (selectedId === orderId) {
      $("details-summary").replaceChildren(h("dt", {}, "error"), h("dd", { class: "err" }, error.message));
    }
  }
  if (selectedId === orderId) renderDetails();
}

/**
 * The plan and quotes of the current attempt, folded as the API's detail folds
 * them: a re-quote's (TransactionSubmitted's plan and requoted) over the route's,
 * none once a retry starts the next attempt. Null when no frame says.
 */
function currentRoute(frames) {
  let current = null;
  for (const f of frames) {
    if (f.type === "RouteSelected") current = { plan: f.plan ?? null, quotes: f.quotes ?? [], requoted: false };
    else if (f.type === "TransactionSubmitted" && f.plan) current = { plan: f.plan, quotes: f.requoted ?? [], requoted: true };
    else if (f.type === "RetryScheduled") current = { plan: null, quotes: [], requoted: false };
  }
  return current;
}

function closeDetails() {
  selectedId = null;
  $("details").hidden = true;
  for (const tr of rowEls.values()) tr.classList.remove("selected");
}

function renderDetails() {
  if (!selectedId) return;
  const order = orders.get(selectedId);
  if (!order) return;
  const detail = order.detail ?? {};
  const frames = [...order.frames.values()].sort((a, b) => a.version - b.version);
  const current = currentRoute(frames) ?? { plan: detail.routePlan, quotes: detail.quotes ?? [], requoted: false };
  const confirmed = frames.find((f) => f.type === "SwapConfirmed");

  // summary
  const rows = [
    ["status", statusBadge(order.status)],
    ["pair", `${order.tokenPair ?? "—"} · ${order.side ?? "—"}`],
    ["amount", order.amount ?? "—"],
    ["slippage", order.slippageBps != null || detail.slippageBps != null ? `${order.slippageBps ?? detail.slippageBps} bps` : "—"],
    ["attempts", order.attempts ?? detail.attempt ?? "—"],
    ["final price", order.finalPrice ?? detail.finalPrice ?? "—"],
    ["in / out", confirmed ? `${confirmed.amountIn} → ${confirmed.amountOut}` : detail.amountIn ? `${detail.amountIn} → ${detail.amountOut}` : "—"],
    ["tx", h("code", {}, order.txHash ?? detail.txHash ?? "—")],
    ["version", order.version || detail.version || "—"],
  ];
  $("details-summary").replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));

  // timeline with the latency between steps
  const items = [];
  let previousAt = null;
  const firstAt = frames.length ? parseTime(frames[0].at) : null;
  for (const frame of frames) {
    const at = parseTime(frame.at);
    const delta = previousAt != null && at != null ? at - previousAt : null;
    previousAt = at ?? previousAt;
    const cls = frame.type === "SwapConfirmed" ? "confirmed" : frame.type === "OrderFailed" ? "failed" : frame.type === "RetryScheduled" ? "retry" : "";
    items.push(
      h(
        "li",
        { class: cls, dataset: { testid: "timeline-item", type: frame.type ?? "", status: frame.status ?? "" } },
        h(
          "div",
          { class: "row1" },
          statusBadge(frame.status ?? "?"),
          h("span", { class: "type" }, frame.type),
          h("span", { class: "delta", title: "since previous step" }, delta != null ? `+${duration(delta)}` : ""),
          h("span", { class: "when", title: frame.at }, clock(at)),
        ),
        h("div", { class: "extra" }, describeFrame(frame)),
      ),
    );
  }
  const lastAt = frames.length ? parseTime(frames[frames.length - 1].at) : null;
  if (frames.length > 1 && firstAt != null && lastAt != null) {
    items.push(
      h("li", { class: "total", dataset: { testid: "timeline-total" } }, `${TERMINAL.has(order.status) ? "end-to-end" : "elapsed"}: ${duration(lastAt - firstAt)}`),
    );
  }
  if (!items.length) items.push(h("li", { class: "muted" }, "loading…"));
  $("timeline").replaceChildren(...items);

  // quotes of the current attempt's route (both venues), the best one highlighted
  const quotes = current.quotes ?? [];
  const buy = order.side === "buy";
  let bestIndex = -1;
  quotes.forEach((q, i) => {
    const better =
      bestIndex < 0 ||
      (buy ? Number(q.inAmount) < Number(quotes[bestIndex].inAmount) : Number(q.outAmount) > Number(quotes[bestIndex].outAmount));
    if (better) bestIndex = i;
  });
  $("quotes").replaceChildren(
    h(
      "thead",
      {},
      // The slippage bound: a sell (ExactIn) gets at least min out, a buy (ExactOut)
      // pays at most max in (its min out is the exact amount bought).
      h(
        "tr",
        {},
        ["venue", "in", "out", buy ? "max in" : "min out", "impact %", "fee", "slot"].map((c, i) =>
          h("th", { class: i ? "num" : "", title: i === 3 ? "the slippage bound" : null }, c),
        ),
      ),
    ),
    h(
      "tbody",
      {},
      quotes.length
        ? quotes.map((q, i) =>
            h(
              "tr",
              { class: i === bestIndex ? "best" : "", dataset: { venue: q.venue } },
              h("td", { class: `v-${q.venue}` }, q.venue),
              numCell(q.inAmount),
              numCell(q.outAmount),
              numCell(buy ? q.maxAmountIn : q.minAmountOut),
              numCell(fractionAsPercent(q.priceImpactPct)),
              numCell(q.fee),
              h("td", { class: "num" }, q.slot ?? "—"),
            ),
          )
        : h("tr", {}, h("td", { colspan: "7", class: "muted" }, "no quotes yet")),
    ),
  );

  // route plan
  const plan = current.plan;
  const route = $("route");
  if (plan?.legs?.length) {
    const legs = [...plan.legs].sort((a, b) => b.bps - a.bps);
    route.replaceChildren(
      h(
        "div",
        { class: "share-bar", "aria-hidden": "true" },
        legs.map((l) => h("span", { class: `bg-${VENUES.includes(l.venue) ? l.venue : "other"}`, style: `width:${l.bps / 100}%` }, `${l.venue} ${pct(l.bps)}`)),
      ),
      h(
        "table",
        { class: "mini" },
        h("thead", {}, h("tr", {}, ["leg", "share", "in", "out"].map((c, i) => h("th", { class: i ? "num" : "" }, c)))),
        h(
          "tbody",
          {},
          legs.map((l) => h("tr", {}, h("td", { class: `v-${l.venue}` }, l.venue), h("td", { class: "num" }, pct(l.bps)), numCell(l.inAmount), numCell(l.outAmount))),
        ),
      ),
      h(
        "div",
        { class: "reason", dataset: { testid: "route-reason" } },
        plan.reason ?? "",
        plan.gainBpsOverBestSingle != null ? ` · gain over best single venue: ${plan.gainBpsOverBestSingle} bps` : "",
        current.requoted ? " · re-quoted before sending" : "",
      ),
    );
  } else {
    route.replaceChildren(h("span", { class: "muted" }, "no route yet"));
  }

  // attempts and failures
  const failures = frames
    .filter((f) => f.type === "RetryScheduled" || f.type === "OrderFailed")
    .map((f) => ({
      attempt: f.failedAttempt ?? f.attempt,
      failure: f.failure,
      reason: f.reason,
      retry: f.type === "RetryScheduled",
      delayMs: f.delayMs,
    }));
  const list = failures.length ? failures : (detail.failures ?? []).map((f) => ({ ...f, retry: false }));
  const attempts = order.attempts ?? detail.attempt;
  $("failures").replaceChildren(
    h("div", { class: "muted" }, `${attempts ?? 0} attempt${attempts === 1 ? "" : "s"}${order.status === "confirmed" ? ", confirmed" : ""}`),
    ...list.map((f) =>
      h(
        "div",
        { class: `failure ${f.retry ? "retry" : ""}`, dataset: { testid: "failure" } },
        h("b", {}, `attempt ${f.attempt ?? "?"}: ${f.failure ?? "failure"}`),
        f.retry && f.delayMs != null ? h("span", { class: "muted" }, ` · retry in ${f.delayMs} ms`) : "",
        h("div", {}, f.reason ?? ""),
      ),
    ),
    order.failureReason && order.status === "failed" && !list.length ? h("div", { class: "failure" }, order.failureReason) : "",
  );
}

// ---------------------------------------------------------------------------
// charts (uPlot, vendored)

const charts = {};
const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function makeChart(el, series, { yLabel, yRange, height = 132 } = {}) {
  if (!globalThis.uPlot) return null;
  const axis = {
    stroke: cssVar("--muted"),
    grid: { stroke: "#1b2633", width: 1 },
    ticks: { stroke: "#1b2633", width: 1 },
    font: "10px system-ui, sans-serif",
  };
  const size = () => ({ width: Math.max(200, el.clientWidth), height });
  const plot = new uPlot(
    {
      ...size(),
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: yRange ? { range: yRange } : { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [{ ...axis, space: 60, values: (u, splits) => splits.map((t) => clock(t * 1000).slice(0, 8)) }, { ...axis, size: 44, label: yLabel, labelSize: 12, labelFont: "10px system-ui" }],
      series: [{}, ...series.map((s) => ({ width: 1.5, points: { show: false }, spanGaps: false, ...s }))],
    },
    [[], ...series.map(() => [])],
    el,
  );
  new ResizeObserver(() => plot.setSize(size())).observe(el);
  return plot;
}

function initCharts() {
  const stepped = globalThis.uPlot?.paths?.stepped?.({ align: 1 });
  charts.throughput = makeChart($("chart-throughput"), [
    { label: "confirmed", stroke: cssVar("--ok"), fill: "rgba(63,185,80,.18)", paths: stepped },
    { label: "failed", stroke: cssVar("--bad"), fill: "rgba(248,81,73,.18)", paths: stepped },
  ]);
  charts.latency = makeChart(
    $("chart-latency"),
    [
      { label: "p50", stroke: cssVar("--info") },
      { label: "p95", stroke: cssVar("--warn") },
      { label: "p99", stroke: cssVar("--bad") },
    ],
    { yLabel: "ms" },
  );
  charts.venues = makeChart(
    $("chart-venues"),
    VENUES.map((venue) => ({ label: venue, stroke: cssVar(`--${venue}`) })),
    { yLabel: "%", yRange: [0, 100], height: 108 },
  );
}

function updateCharts() {
  const nowS = Math.floor(Date.now() / 1000);
  const start = nowS - HISTORY_S + 1;
  for (const second of buckets.keys()) if (second <= nowS - KEEP_S) buckets.delete(second);
  for (const x of windowPoints.keys()) if (x < start) windowPoints.delete(x);
  const xs = Array.from({ length: HISTORY_S }, (_, i) => start + i);

  // orders per second by outcome
  const ok = xs.map((x) => buckets.get(x)?.ok ?? 0);
  const bad = xs.map((x) => buckets.get(x)?.bad ?? 0);
  const avg = (arr, n) => (arr.slice(-n).reduce((a, b) => a + b, 0) / n).toFixed(1);
  $("tput-now").textContent =
    `ok · failed /s: 10 s avg ${avg(ok, 10)} · ${avg(bad, 10)}` +
    ` · ${HISTORY_S / 60} min avg ${avg(ok, HISTORY_S)} · ${avg(bad, HISTORY_S)}`;

  // latency percentiles and venue share over a sliding window, one point per second
  const points = xs.map(windowPoint);
  const now = points[points.length - 1];
  $("latency-now").textContent = now.p50 != null ? `p50 ${duration(now.p50)} · p95 ${duration(now.p95)} · p99 ${duration(now.p99)}` : "no completions in window";
  renderShareBar(now.venues);
  for (const id of ["tput-now", "latency-now", "venue-now"]) $(id).title = $(id).textContent;

  charts.throughput?.setData([xs, ok, bad]);
  charts.latency?.setData([xs, points.map((p) => p.p50), points.map((p) => p.p95), points.map((p) => p.p99)]);
  charts.venues?.setData([xs, ...VENUES.map((v) => points.map((p) => (p.venues.sum ? (100 * (p.venues[v] ?? 0)) / p.venues.sum : null)))]);
}

/** Percentiles and venue totals of the WINDOW_S seconds that end with second `x`; reused until one of them changes. */
function windowPoint(x) {
  let point = windowPoints.get(x);
  if (point) return point;
  const latencies = [];
  const venues = { sum: 0 };
  for (let s = x - WINDOW_S + 1; s <= x; s += 1) {
    const bucket = buckets.get(s);
    if (!bucket) continue;
    for (const latency of bucket.latencies) latencies.push(latency);
    for (const [venue, weight] of Object.entries(bucket.venues)) {
      venues[venue] = (venues[venue] ?? 0) + weight;
      venues.sum += weight;
    }
  }
  latencies.sort((a, b) => a - b);
  point = { p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95), p99: percentile(latencies, 0.99), venues };
  windowPoints.set(x, point);
  return point;
}

function renderShareBar(totals) {
  const bar = $("venue-bar");
  const names = Object.keys(totals).filter((k) => k !== "sum");
  if (!totals.sum) {
    bar.replaceChildren(h("span", { style: "width:100%;color:var(--muted);font-weight:400" }, "no confirmed swaps in window"));
    $("venue-now").textContent = "";
    return;
  }
  names.sort((a, b) => totals[b] - totals[a]);
  bar.replaceChildren(
    ...names.map((v) => {
      const p = (100 * totals[v]) / totals.sum;
      return h("span", { class: `bg-${VENUES.includes(v) ? v : "other"}`, style: `width:${p}%`, title: `${v} ${p.toFixed(1)}%` }, p >= 12 ? `${v} ${Math.round(p)}%` : "");
    }),
  );
  $("venue-now").textContent = names.map((v) => `${v} ${Math.round((100 * totals[v]) / totals.sum)}%`).join(" · ");
}

// ---------------------------------------------------------------------------
// the firehose, with back-off and resume

let notifierBase = null;
let socket = null;
let failedConnects = 0; // in a row, since the last frame or STABLE_OPEN_MS open
let everConnected = false;
let refusedInARow = 0; // cursors refused since the last frame: backs the restart off

/** The pause before the next try after `failures` in a row: 0.5 s doubling up to
 * 15 s, spread ±25 % so that many pages do not come back at the same moment. */
function backoffMs(failures) {
  return Math.min(15_000, 500 * 2 ** failures) * (0.75 + Math.random() * 0.5);
}

function setConn(state, text) {
  const el = $("conn-state");
  el.dataset.state = state;
  $("conn-text").textContent = text ?? state;
  el.title = text ?? state;
}

function resolveNotifier(configured) {
  const fallback = `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:3001`;
  if (!configured) return fallback;
  try {
    const url = new URL(configured, location.href);
    // A "localhost" notifier URL is only right for a browser on the gateway's host.
    const local = ["localhost", "127.0.0.1", "::1", "[::1]"];
    if (local.includes(url.hostname) && !local.includes(location.hostname) && location.hostname) {
      url.hostname = location.hostname;
    }
    return url.toString().replace(/\/+$/, "");
  } catch {
    return fallback;
  }
}

/** Seed the table from the list (retrying until the gateway answers), then go live. */
async function seedThenConnect() {
  for (let failures = 1; ; failures += 1) {
    try {
      await seedOrders();
      break;
    } catch (error) {
      setConn("reconnecting", "orders unavailable");
      emptyText = `Could not load orders: ${error.message} (retrying)`;
      $("orders-empty").textContent = emptyText;
      await new Promise((resolve) => setTimeout(resolve, backoffMs(failures)));
    }
  }
  connect();
}

function connect() {
  // Always with a cursor: the list's asOfPosition, then the last frame's position.
  const url = `${notifierBase}/ws/orders?after=${lastPosition ?? 0}`;
  setConn(everConnected ? "reconnecting" : "connecting", everConnected ? "reconnecting…" : "connecting…");
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    scheduleReconnect();
    return;
  }
  socket = ws;
  let stableTimer = null;
  ws.addEventListener("open", () => {
    everConnected = true;
    setConn("open", "live");
    stableTimer = setTimeout(() => {
      if (socket === ws) failedConnects = 0;
    }, STABLE_OPEN_MS);
  });
  ws.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    // A status frame (not an {"error"} one) says the notifier serves this socket.
    if (socket === ws && typeof frame === "object" && frame !== null && !frame.error) failedConnects = 0;
    handleFrame(frame);
  });
  ws.addEventListener("close", (event) => {
    clearTimeout(stableTimer);
    if (socket !== ws) return;
    socket = null;
    if (event.code === CLOSE_BAD_REQUEST) {
      // The cursor lies beyond the notifier's log (its store was reset, say):
      // resuming with it again would be refused forever. Start over from the list.
      lastPosition = null;
      const delay = backoffMs(refusedInARow);
      refusedInARow += 1;
      setConn("reconnecting", "cursor refused · reloading orders");
      setTimeout(seedThenConnect, delay);
      return;
    }
    scheduleReconnect(event.reason);
  });
  ws.addEventListener("error", () => {
    // "close" follows and schedules the reconnect.
  });
}

// A notifier whose host vanished closes nothing, and a browser cannot see the
// server's pings: the socket would look live for as long as TCP takes to give
// up. Every STALE_CHECK_MS the list's asOfPosition says how far the log has
// got; a firehose that sent nothing since the last check while the log moved
// past it is dropped and resumed.
let positionAtLastCheck = null;
// The asOfPosition at which the firehose was last dropped as stale. Not again
// until the log moves past it: positions the notifier passes over (event types
// this release cannot show) leave asOfPosition ahead of every frame for good.
let droppedStaleAt = null;

async function checkStale() {
  const ws = socket;
  if (!ws || ws.readyState !== WebSocket.OPEN || lastPosition == null) return false;
  const quiet = positionAtLastCheck === lastPosition;
  positionAtLastCheck = lastPosition;
  let listed;
  try {
    listed = (await api("/api/orders?limit=1"))?.asOfPosition ?? 0;
  } catch {
    return false; // the gateway cannot say: nothing to compare with
  }
  // Looked at again after the wait: the socket may have closed or been replaced.
  if (socket !== ws || ws.readyState !== WebSocket.OPEN || lastPosition == null) return false;
  if (!quiet || listed <= lastPosition || (droppedStaleAt != null && listed <= droppedStaleAt)) {
    return false;
  }
  droppedStaleAt = listed;
  socket = null; // its close, whenever it comes, is not ours to act on
  ws.close();
  positionAtLastCheck = null;
  setConn("reconnecting", "no frames while orders moved · reconnecting…");
  connect();
  return true;
}

/** Try again after the back-off; `reason` is the close's, as the notifier gave it. */
function scheduleReconnect(reason) {
  const delay = backoffMs(failedConnects);
  failedConnects += 1;
  setConn("reconnecting", `offline · retry in ${Math.ceil(delay / 1000)}s${reason ? ` · ${reason}` : ""}`);
  setTimeout(connect, delay);
}

function handleFrame(frame) {
  if (Array.isArray(frame)) {
    frame.forEach(handleFrame);
    return;
  }
  if (typeof frame?.position === "number") {
    refusedInARow = 0;
    if (frame.position > (lastPosition ?? 0)) lastPosition = frame.position;
  }
  const isNew = !orders.has(frame?.orderId);
  if (!applyFrame(frame)) return;
  if (isNew) {
    tableNeedsSort = true;
    // Placed before the list's newest orders: its earlier events are not here.
    if (frame.version > 1) backfill(frame.orderId);
  }
  logFrame(frame);
  markDirty(frame.orderId);
  trimOrders();
}

// Orders first seen mid-stream get their history (pair, side, amount, createdAt,
// and so their latency) from the API, a few at a time: a burst of them must not
// flood the gateway. A fetch that fails is tried again after the back-off.
const backfillQueue = []; // [{orderId, failures}]
const backfillWanted = new Set(); // queued, being fetched, or waiting to be tried again
let backfilling = 0;

function backfill(orderId) {
  // Beyond the bound: shown without those fields, last.
  if (backfillWanted.has(orderId) || backfillWanted.size >= MAX_BACKFILL_QUEUE) return;
  backfillWanted.add(orderId);
  backfillQueue.push({ orderId, failures: 0 });
  pumpBackfill();
}

function pumpBackfill() {
  while (backfilling < BACKFILL_CONCURRENCY && backfillQueue.length) {
    const job = backfillQueue.shift();
    const { orderId } = job;
    if (!orders.has(orderId)) {
      backfillWanted.delete(orderId);
      continue;
    }
    backfilling += 1;
    api(`/api/orders/${encodeURIComponent(orderId)}/events`)
      .then(
        (events) => {
          backfillWanted.delete(orderId);
          if (!orders.has(orderId)) return;
          for (const frame of events?.events ?? []) applyFrame(frame);
          tableNeedsSort = true;
          markDirty(orderId);
        },
        (error) => {
          // A gateway away or overloaded answers later; one that does not know the order, never.
          const never = error?.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
          if (never || !orders.has(orderId)) {
            backfillWanted.delete(orderId);
            return;
          }
          const delay = backoffMs(job.failures);
          job.failures += 1;
          setTimeout(() => {
            backfillQueue.push(job);
            pumpBackfill();
          }, delay);
        },
      )
      .finally(() => {
        backfilling -= 1;
        pumpBackfill();
      });
  }
}

// ---------------------------------------------------------------------------
// submitting orders

/** The form as a request body; throws, as the API's 422 would, for a slippage that is no number. */
function readForm() {
  // A number input holds "" for what it cannot parse ("1e", "--5"): that is no
  // reason to send the default tolerance instead of the one the user meant.
  if ($("slippage").validity.badInput) {
    const detail = [{ loc: ["body", "slippageBps"], msg: "not a whole number of bps (1 to 5000)" }];
    const error = new Error(describeError(422, { detail }));
    error.body = { detail };
    throw error;
  }
  const form = $("order-form");
  const data = new FormData(form);
  const body = {
    amount: String(data.get("amount") ?? "").trim(),
    tokenPair: data.get("tokenPair"),
    type: "market",
    side: data.get("side") ?? "sell",
  };
  const slippage = String(data.get("slippageBps") ?? "").trim();
  if (slippage !== "") body.slippageBps = Number(slippage);
  // Send a number when it is one exactly; otherwise the string, so the API names the error.
  if (/^\d+(\.\d+)?$/.test(body.amount) && String(Number(body.amount)) === body.amount) body.amount = Number(body.amount);
  return body;
}

function markInvalid(error) {
  for (const el of document.querySelectorAll("#order-form [aria-invalid]")) el.removeAttribute("aria-invalid");
  const fields = { amount: "amount", tokenPair: "pair", side: "side", slippageBps: "slippage" };
  for (const d of Array.isArray(error?.body?.detail) ? error.body.detail : []) {
    const field = (d.loc || []).at(-1);
    const el = fields[field] && $(fields[field]);
    if (el) el.setAttribute("aria-invalid", "true");
  }
}

async function submitOrder(body) {
  const accepted = await api("/api/orders/execute", { method: "POST", body: JSON.stringify(body) });
  if (accepted?.orderId) {
    const order = getOrder(accepted.orderId);
    order.tokenPair ??= body.tokenPair;
    order.side ??= body.side;
    order.amount ??= String(body.amount);
    order.slippageBps ??= body.slippageBps ?? null;
    order.createdAt ??= Date.now();
    tableNeedsSort = true;
    markDirty(accepted.orderId);
  }
  return accepted;
}

let submitting = false;
let burstRunning = false;

async function onSubmit(event) {
  event.preventDefault();
  if (!pairs.length || submitting) return;
  const out = $("form-result");
  submitting = true;
  updateSubmitButtons();
  out.className = "form-result";
  out.textContent = "submitting…";
  try {
    const accepted = await submitOrder(readForm());
    markInvalid(null);
    out.className = "form-result ok";
    out.textContent = `accepted ${accepted.orderId}`;
    out.dataset.orderId = accepted.orderId;
  } catch (error) {
    markInvalid(error);
    out.className = "form-result err";
    out.textContent = error.message;
  } finally {
    submitting = false;
    updateSubmitButtons();
  }
}

async function onBurst() {
  if (!pairs.length || burstRunning) return;
  const count = Math.max(1, Math.min(500, Number($("burst-count").value) || 1));
  const out = $("burst-status");
  let base;
  try {
    base = readForm();
  } catch (error) {
    markInvalid(error);
    out.className = "form-result err";
    out.textContent = error.message;
    return;
  }
  const tag = `burst-${Date.now().toString(36)}`;
  let next = 0;
  let ok = 0;
  let rejected = 0;
  let lastError = "";
  const started = performance.now();
  burstRunning = true;
  updateSubmitButtons();
  out.className = "form-result";
  const progress = () => {
    out.textContent = `${ok}/${count} accepted${rejected ? ` · ${rejected} rejected (${lastError})` : ""}`;
  };
  const worker = async () => {
    while (next < count) {
      const i = next;
      next += 1;
      try {
        await submitOrder({ ...base, clientOrderId: `${tag}-${i}` });
        ok += 1;
      } catch (error) {
        rejected += 1;
        lastError = error.message;
      }
      progress();
    }
  };
  progress();
  await Promise.all(Array.from({ length: Math.min(BURST_CONCURRENCY, count) }, worker));
  out.className = `form-result ${rejected ? "err" : "ok"}`;
  out.textContent = `${ok}/${count} accepted in ${duration(performance.now() - started)}${rejected ? ` · ${rejected} rejected (${lastError})` : ""}`;
  burstRunning = false;
  updateSubmitButtons();
}

function updateSideHint() {
  const [base, quote] = String($("pair").value || "BASE-QUOTE").split("-");
  const amount = $("amount").value || "N";
  const side = document.querySelector('input[name="side"]:checked')?.value ?? "sell";
  $("side-hint").textContent =
    side === "sell" ? `spend exactly ${amount} ${base}, receive ${quote}` : `receive exactly ${amount} ${base}, pay ${quote}`;
}

// ---------------------------------------------------------------------------
// start-up

async function seedOrders() {
  const list = await api("/api/orders?limit=100");
  for (const row of list?.orders ?? []) applySummary(row);
  // Every row reflects at least the events up to asOfPosition: the firehose
  // resumes there, so nothing falls between the list and the live frames.
  lastPosition = list?.asOfPosition ?? 0;
  droppedStaleAt = null; // positions start over with the list (a reset store, say)
  emptyText = "No orders yet. Submit one on the left.";
  $("orders-empty").textContent = emptyText;
  tableNeedsSort = true;
  scheduleRender();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `load()` until it succeeds, backing off between tries; `onFailure(error)` on each miss. */
async function untilLoaded(load, onFailure) {
  for (let failures = 0; ; failures += 1) {
    try {
      return await load();
    } catch (error) {
      onFailure(error);
      await sleep(backoffMs(failures));
    }
  }
}

/** Orders need a pair: Execute and the burst stay disabled until the pairs load. */
function updateSubmitButtons() {
  $("submit").disabled = !pairs.length || submitting;
  $("burst").disabled = !pairs.length || burstRunning;
}

async function loadPairs() {
  const out = $("form-result");
  const loaded = await untilLoaded(
    async () => {
      const list = (await api("/api/pairs"))?.pairs;
      if (!Array.isArray(list) || !list.length) throw new Error("no pairs listed");
      return list;
    },
    (error) => {
      out.className = "form-result err";
      out.dataset.pairs = "unavailable";
      out.textContent = `Could not load pairs: ${error.message} (retrying)`;
    },
  );
  pairs = loaded;
  if (out.dataset.pairs) {
    delete out.dataset.pairs;
    out.className = "form-result";
    out.textContent = "";
  }
  const select = $("pair");
  const previous = select.value;
  select.replaceChildren(...pairs.map((p) => h("option", { value: p }, p)));
  if (pairs.includes(previous)) select.value = previous;
  updateSubmitButtons();
  updateSideHint();
}

/** Where the notifier is, from the gateway (retried: a guessed URL would stay wrong). */
function loadConfig() {
  return untilLoaded(
    () => api("/api/config"),
    (error) => setConn("connecting", `config unavailable: ${error.message} · retrying`),
  );
}

function wireUi() {
  $("order-form").addEventListener("submit", onSubmit);
  $("burst").addEventListener("click", onBurst);
  $("order-form").addEventListener("input", updateSideHint);
  $("order-form").addEventListener("change", updateSideHint);
  $("details-close").addEventListener("click", closeDetails);
  $("log-clear").addEventListener("click", () => $("event-log").replaceChildren());
  $("status-filter").addEventListener("change", () => {
    tableNeedsSort = true;
    scheduleRender();
  });
  const openFromEvent = (event) => {
    const row = event.target.closest("[data-order-id]");
    if (row) openDetails(row.dataset.orderId);
  };
  $("orders-body").addEventListener("click", openFromEvent);
  $("orders-body").addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openFromEvent(event);
    }
  });
  $("event-log").addEventListener("click", openFromEvent);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && selectedId) closeDetails();
  });
}

async function main() {
  wireUi();
  initCharts();
  updateSubmitButtons();
  loadPairs(); // retries on its own until the gateway lists them
  updateCharts();
  setInterval(checkStale, STALE_CHECK_MS);
  setInterval(() => {
    updateCharts();
    refreshAges();
  }, 1000);
  const config = await loadConfig();
  notifierBase = resolveNotifier(config?.notifierUrl);
  seedThenConnect();
}

main();

// For browser tests and the console.
globalThis.dashboard = { orders, get lastPosition() { return lastPosition; }, handleFrame, checkStale };
