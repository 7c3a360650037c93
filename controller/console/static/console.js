// fsfarm console: renders the page spec (controller/console/pages.py) from API answers.
// Every read and every button is a call to /api/v1 with the session cookie and the CSRF header,
// so the console can do exactly what the API lets this user do, no more.
"use strict";

const meta = document.querySelector('meta[name="csrf-token"]');
const CSRF = meta ? meta.content : "";
const CSRF_HEADER = meta ? meta.dataset.header : "X-CSRF-Token";
const spec = JSON.parse(document.getElementById("page-spec").textContent);
const root = document.getElementById("page");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function toast(text, level = "error") {
  const box = el("div", { class: `toast ${level}`, role: level === "error" ? "alert" : "status" }, text);
  document.getElementById("toasts").append(box);
  setTimeout(() => box.remove(), level === "error" ? 8000 : 3000);
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.detail = body ? body.detail : null;
  }
}

async function api(method, path, body, { raw = false } = {}) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") init.headers[CSRF_HEADER] = CSRF;
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const reply = await fetch(path, init);
  if (reply.status === 401) {
    window.location = "/console/login";
    throw new ApiError(401, { error: "signed out" });
  }
  const data = reply.headers.get("Content-Type")?.includes("json") ? await reply.json() : null;
  if (!reply.ok) throw new ApiError(reply.status, data);
  return raw ? reply : data;
}

// {tenant}: the page's tenant; {q_NAME}: the page URL's ?NAME= (the tenant's own account when absent); else the row's.
function fill(template, row) {
  return template.replace(/\{(\w+)\}/g, (_, key) => {
    if (key === "tenant") return encodeURIComponent(spec.tenant);
    if (key.startsWith("q_")) return encodeURIComponent(new URLSearchParams(location.search).get(key.slice(2)) || "tenant");
    return encodeURIComponent(row[key] ?? "");
  });
}

function fillBody(body, row) {
  const out = {};
  for (const [k, v] of Object.entries(body)) out[k] = typeof v === "string" ? fill(v, row) : v;
  return out;
}

function shown(value, how) {
  if (value === null || value === undefined || value === "") return "—";
  if (how === "yesno") return value ? "yes" : "no";
  if (how === "time") return new Date(value).toLocaleString();
  if (how === "seconds") return Number(value).toFixed(2);
  if (how === "state") return el("span", { class: `state state-${String(value).replace(/\W/g, "")}` }, value);
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

async function runAction(action, row, reload) {
  if (action.method === "GO") {
    window.location = fill(action.path, row);
    return;
  }
  if (action.method === "EDIT") {
    openForm(spec.edit, row, reload);
    return;
  }
  if (action.confirm && !window.confirm(fill(action.confirm, row).replace(/%40/g, "@"))) return;
  let body = Object.keys(action.body || {}).length ? fillBody(action.body, row) : undefined;
  for (const name of action.ask || []) {
    const answer = window.prompt(`${action.label}: ${name}`);
    if (answer === null) return;
    body = { ...(body || {}), [name]: answer };
  }
  if (action.method === "POST" && body === undefined) body = {};
  try {
    await api(action.method, fill(action.path, row), body);
    toast(`${action.label}: done`, "ok");
    reload();
  } catch (err) {
    toast(`${action.label}: ${err.message}`);
  }
}

function table(columns, rows, actions, reload, key) {
  const head = el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c.label)), actions.length ? el("th", {}) : null);
  const body = rows.map((row) =>
    el(
      "tr",
      { "data-key": row[key] ?? "" },
      columns.map((c) => el("td", { "data-col": c.key }, c.show === "audio" ? audioCell(row, c) : shown(row[c.key], c.show))),
      actions.length
        ? el("td", { class: "actions" }, actions.map((a) =>
            el("button", { class: a.danger ? "small danger" : "small outline", onclick: () => runAction(a, row, reload) }, a.label)))
        : null,
    ));
  if (!rows.length) {
    body.push(el("tr", {}, el("td", { colspan: columns.length + 1, class: "muted" }, "Nothing here yet.")));
  }
  return el("div", { class: "overflow-auto" }, el("table", { class: "striped" }, el("thead", {}, head), el("tbody", {}, body)));
}

function audioCell(row, column) {
  const src = `${fill(spec.src.split("?")[0], {})}/${row[column.key].split("/").map(encodeURIComponent).join("/")}`;
  return el("span", {}, row[column.key], " ", el("audio", { controls: true, preload: "none", src }));
}

// ---------------------------------------------------------------- forms from the API's field schemas

function input(field, value) {
  const s = field.schema || {};
  const id = `f-${field.name}`;
  const label = field.name.replace(/_/g, " ") + (field.required ? " *" : "");
  let control;
  if (s.type === "boolean") {
    control = el("input", { type: "checkbox", name: field.name, id, role: "switch", checked: value === undefined ? s.default === true : value === true });
    return el("label", { for: id }, control, " ", label);
  }
  if (s.enum) {
    control = el("select", { name: field.name, id }, el("option", { value: "" }, "—"),
      s.enum.map((o) => el("option", { value: o, selected: o === value }, o)));
  } else if (s.type === "array" && s.items && s.items.enum) {
    control = el("select", { name: field.name, id, multiple: true },
      s.items.enum.map((o) => el("option", { value: o, selected: Array.isArray(value) && value.includes(o) }, o)));
  } else if (s.type === "object") {
    control = el("textarea", { name: field.name, id, rows: 3 }, value ? JSON.stringify(value, null, 1) : "");
  } else {
    const type = field.secret ? "password" : s.type === "integer" || s.type === "number" ? "number" : "text";
    control = el("input", { type, name: field.name, id, value: value ?? "", autocomplete: "off",
      min: s.minimum, max: s.maximum, placeholder: s.default ?? "" });
  }
  return el("label", { for: id }, label, control);
}

function formValues(form, fields, partial) {
  const out = {};
  for (const field of fields) {
    const node = form.elements[field.name];
    const s = field.schema || {};
    if (!node) continue;
    if (s.type === "boolean") {
      if (node.dataset.touched || (!partial && node.checked !== (s.default === true))) out[field.name] = node.checked;
    } else if (s.type === "array") {
      const picked = [...node.selectedOptions].map((o) => o.value);
      if (picked.length || !partial) out[field.name] = picked;
    } else if (node.value !== "") {
      if (s.type === "integer" || s.type === "number") out[field.name] = Number(node.value);
      else if (s.type === "object") {
        try { out[field.name] = JSON.parse(node.value); } catch { out[field.name] = node.value; }
      } else out[field.name] = node.value;
    }
  }
  return out;
}

function markInvalid(form, err) {
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const field = err.detail && (err.detail.field || (err.detail.missing || [])[0]);
  if (field && form.elements[field]) form.elements[field].setAttribute("aria-invalid", "true");
}

function openForm(form, row, reload) {
  const dialog = document.getElementById("dialog");
  const target = document.getElementById("dialog-form");
  document.getElementById("dialog-title").textContent = form.title;
  target.replaceChildren(
    ...form.fields.map((f) => input(f, row ? row[f.name] : undefined)),
    el("p", { class: "error", id: "form-error", role: "alert" }),
    el("footer", {},
      el("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel"),
      el("button", { type: "submit" }, "Save")),
  );
  for (const box of target.querySelectorAll("input[type=checkbox]")) box.addEventListener("change", () => { box.dataset.touched = "1"; });
  target.onsubmit = async (event) => {
    event.preventDefault();
    const partial = form.method === "PATCH";
    try {
      await api(form.method, fill(form.path, row || {}), formValues(target, form.fields, partial));
      dialog.close();
      toast(`${form.title}: saved`, "ok");
      reload();
    } catch (err) {
      document.getElementById("form-error").textContent = err.message;
      markInvalid(target, err);
    }
  };
  dialog.showModal();
}

// ---------------------------------------------------------------- views

const views = {};

views.table = async (box, reload) => {
  const rows = await api("GET", fill(spec.src, {}));
  const actions = spec.edit ? [{ label: "Edit", method: "EDIT" }, ...spec.actions] : spec.actions;
  const bar = spec.create
    ? el("p", {}, el("button", { id: "create", onclick: () => openForm(spec.create, null, reload) }, spec.create.title))
    : null;
  box.replaceChildren(...[bar, el("p", { class: "muted count" }, `${rows.length} shown`),
    table(spec.columns, rows, actions, reload, spec.key)].filter(Boolean));
};
views.members = views.table;

views.placement = async (box) => {
  const farm = !spec.tenant;
  const [where, nodes, generations] = await Promise.all([api("GET", spec.src),
    farm ? api("GET", "/api/v1/nodes") : [], farm ? api("GET", "/api/v1/placement/generations") : []]);
  const byNode = {};
  for (const t of where.tenants) (byNode[t.node || "(no node)"] ||= []).push(t);
  const rooms = {};
  for (const r of where.conferences) (rooms[r.mixer ? `mixer ${r.mixer}` : r.node || "(no node)"] ||= []).push(r);
  const cards = nodes.map((n) =>
    el("article", { class: `node-card health-${n.health}`, "data-node": n.name },
      el("header", {}, el("strong", {}, n.name), " ", shown(n.health, "state"), n.spare ? el("span", { class: "tag" }, "spare") : null,
        n.admin_state !== "active" ? el("span", { class: "tag" }, n.admin_state) : null),
      el("ul", { class: "tenants" }, (byNode[n.name] || []).map((t) => el("li", { "data-tenant": t.tenant }, t.tenant, t.pinned ? " (pinned)" : ""))),
      (rooms[n.name] || []).length ? el("p", { class: "muted" }, `rooms: ${rooms[n.name].map((r) => `${r.conference}@${r.tenant}`).join(", ")}`) : null));
  const unplaced = byNode["(no node)"] || [];
  const spares = nodes.filter((n) => n.spare && n.health !== "down").length;
  box.replaceChildren(...[
    el("p", {}, `Generation ${where.generation}`, where.reason ? ` — ${where.reason}` : "",
      where.decided_at ? el("small", { class: "muted" }, ` (${new Date(where.decided_at).toLocaleString()})`) : ""),
    spec.tenant ? null : el("p", { id: "spares" }, `${spares} spare node(s) free`),
    unplaced.length ? el("p", { class: "error" }, `Not placed: ${unplaced.map((t) => t.tenant).join(", ")}`) : null,
    cards.length ? el("div", { class: "grid-cards" }, cards) : table(
      [{ key: "tenant", label: "Tenant" }, { key: "node", label: "Node" }, { key: "generation", label: "Generation" }], where.tenants, [], () => {}, "tenant"),
    Object.entries(rooms).some(([k]) => k.startsWith("mixer"))
      ? el("p", {}, Object.entries(rooms).filter(([k]) => k.startsWith("mixer")).map(([k, rs]) => `${k}: ${rs.map((r) => r.conference).join(", ")}`).join("; "))
      : null,
    generations.length ? el("h3", {}, "Generations") : null,
    generations.length ? table([{ key: "generation", label: "Generation" }, { key: "created_at", label: "When", show: "time" },
      { key: "reason", label: "Why" }, { key: "moved", label: "Moved" }], generations.slice(0, 10), [], () => {}, "generation") : null,
  ].filter(Boolean));
};

let chart = null;
const history = [[], [], []];
views.overview = async (box) => {
  const nodes = await api("GET", spec.src);
  const calls = nodes.reduce((n, x) => n + (x.live_calls || 0), 0);
  const regs = nodes.reduce((n, x) => n + (x.registrations || 0), 0);
  history[0].push(Date.now() / 1000); history[1].push(calls); history[2].push(regs);
  if (history[0].length > 300) history.forEach((h) => h.shift());
  const up = nodes.filter((n) => n.health === "up").length;
  const summary = el("div", { class: "grid stats" },
    el("article", {}, el("h3", { id: "stat-nodes" }, `${up}/${nodes.length}`), "nodes up"),
    el("article", {}, el("h3", { id: "stat-calls" }, calls), "live calls"),
    el("article", {}, el("h3", { id: "stat-regs" }, regs), "registrations"),
    el("article", {}, el("h3", {}, nodes.filter((n) => n.spare && n.health !== "down").length), "spares free"));
  if (!box.querySelector(".stats")) {
    box.replaceChildren(summary, el("div", { id: "chart" }));
  } else {
    box.querySelector(".stats").replaceWith(summary);
  }
  if (window.uPlot) {
    if (!chart) {
      chart = new uPlot({ width: Math.min(box.clientWidth || 800, 1000), height: 260,
        scales: { x: { time: true, range: (u, min, max) => [max - 300, max] }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.2)] } },
        series: [{},
        { label: "live calls", stroke: "#1971c2", width: 2 }, { label: "registrations", stroke: "#2f9e44", width: 2 }] },
        history, box.querySelector("#chart"));
    } else chart.setData(history);
  }
};

views.import = async (box) => {
  const file = el("input", { type: "file", name: "file", accept: ".csv,text/csv", id: "import-file" });
  const mode = el("select", { name: "on_conflict", id: "import-mode" }, ["skip", "update", "fail"].map((m) => el("option", { value: m }, m)));
  const dry = el("input", { type: "checkbox", id: "import-dry", role: "switch" });
  const report = el("div", { id: "import-report" });
  const go = el("button", { id: "import-go", onclick: async () => {
    if (!file.files.length) { toast("choose a CSV file first"); return; }
    const text = await file.files[0].text();
    try {
      const result = await api("POST", fill(spec.src, {}), { csv: text, on_conflict: mode.value, dry_run: dry.checked });
      const rows = result.rows.filter((r) => r.outcome === "error");
      report.replaceChildren(...[
        el("p", { id: "import-summary" }, `${result.created} created, ${result.updated} updated, ${result.skipped} skipped, ${result.errors} with errors${result.dry_run ? " (dry run: nothing stored)" : ""}`),
        result.note ? el("p", { class: "muted" }, result.note) : null,
        result.ignored_columns && result.ignored_columns.length ? el("p", { class: "muted", id: "import-ignored" }, `Ignored columns: ${result.ignored_columns.join(", ")}`) : null,
        table([{ key: "row", label: "Row" }, { key: "extension", label: "Extension" }, { key: "outcome", label: "Outcome", show: "state" },
          { key: "column", label: "Column" }, { key: "field", label: "Field" }, { key: "error", label: "Why" }], result.rows, [], () => {}, "row"),
      ].filter(Boolean));
      if (rows.length) toast(`${rows.length} row(s) not imported: see the report`);
    } catch (err) {
      report.replaceChildren(el("p", { class: "error", role: "alert" }, err.message));
    }
  } }, "Import");
  box.replaceChildren(el("div", { class: "grid" }, el("label", {}, "CSV file", file), el("label", {}, "When the extension exists", mode),
    el("label", {}, dry, " dry run")), go, report);
};

views.prompts = async (box, reload) => {
  const rows = await api("GET", spec.src.replace("{tenant}", encodeURIComponent(spec.tenant)));
  const file = el("input", { type: "file", accept: "audio/wav,.wav", id: "prompt-file" });
  const name = el("input", { placeholder: "name (e.g. welcome.wav)", id: "prompt-name" });
  const upload = el("button", { id: "prompt-upload", onclick: async () => {
    if (!file.files.length) { toast("choose a WAV file first"); return; }
    const form = new FormData();
    form.append("file", file.files[0]);
    form.append("name", name.value || file.files[0].name);
    try { await api("POST", fill(spec.src, {}), form); toast("uploaded", "ok"); reload(); } catch (err) { toast(err.message); }
  } }, "Upload");
  const cols = [{ key: "name", label: "Prompt", show: "audio" }, { key: "size", label: "Bytes" }];
  const del = [{ label: "Delete", method: "DELETE", path: `${spec.src}/{name}`, confirm: "Delete {name}?", danger: true }];
  box.replaceChildren(el("div", { class: "grid" }, file, name, upload), table(cols, rows, del, reload, "name"));
};

views.voicemail = async (box, reload) => {
  const users = await api("GET", fill(spec.src, {}));
  const boxes = users.filter((u) => u.voicemail);
  const picked = new URLSearchParams(location.search).get("user") || (boxes[0] || {}).extension;
  const picker = el("select", { id: "vm-user", onchange: (e) => { location.search = `?user=${e.target.value}`; } },
    boxes.map((u) => el("option", { value: u.extension, selected: u.extension === picked }, `${u.extension} ${u.display_name || ""}`)));
  if (!picked) { box.replaceChildren(el("p", { class: "muted" }, "No user has a voicemail box.")); return; }
  const base = `${fill(spec.src, {})}/${encodeURIComponent(picked)}/voicemail`;
  const messages = await api("GET", base);
  const list = Array.isArray(messages) ? messages : messages.messages || [];
  const rows = list.map((m) => ({ ...m, audio: `${base}/${m.id}/audio` }));
  const cols = [{ key: "created_at", label: "When", show: "time" }, { key: "caller_number", label: "From" },
    { key: "duration", label: "Seconds" }, { key: "read", label: "Read", show: "yesno" }];
  const tbl = table(cols, rows, [
    { label: "Mark read", method: "POST", path: `${base}/{id}/read` },
    { label: "Delete", method: "DELETE", path: `${base}/{id}`, confirm: "Delete this message?", danger: true }], reload, "id");
  tbl.querySelectorAll("tbody tr[data-key]").forEach((tr, i) => tr.append(el("td", {}, el("audio", { controls: true, preload: "none", src: rows[i].audio }))));
  box.replaceChildren(el("label", {}, "Mailbox", picker), tbl);
};

let cdrRows = [];
views.cdrs = async (box) => {
  cdrRows = await api("GET", fill(spec.src, {}));
  const q = el("input", { type: "search", id: "cdr-filter", placeholder: "number contains…" });
  const since = el("input", { type: "date", id: "cdr-since" });
  const cause = el("select", { id: "cdr-cause" }, el("option", { value: "" }, "any hang-up cause"),
    [...new Set(cdrRows.map((r) => r.hangup_cause))].sort().map((c) => el("option", { value: c }, c)));
  const holder = el("div", {});
  const filtered = () => cdrRows.filter((r) =>
    (!q.value || `${r.caller_number} ${r.destination}`.includes(q.value)) &&
    (!since.value || (r.started_at && r.started_at >= since.value)) &&
    (!cause.value || r.hangup_cause === cause.value));
  const redraw = () => holder.replaceChildren(el("p", { class: "muted count" }, `${filtered().length} of ${cdrRows.length}`),
    table(spec.columns, filtered(), [], () => {}, "channel_uuid"));
  for (const c of [q, since, cause]) c.addEventListener("input", redraw);
  const csv = el("button", { id: "cdr-csv", class: "outline", onclick: () => {
    const keys = ["started_at", "answered_at", "ended_at", "direction", "caller_number", "caller_name", "destination",
      "duration", "billsec", "hangup_cause", "channel_uuid", "call_uuid"];
    const quote = (v) => `"${String(v ?? "").replace(/"/g, '""')}"`;
    const text = [keys.join(","), ...filtered().map((r) => keys.map((k) => quote(r[k])).join(","))].join("\r\n") + "\r\n";
    const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: `cdrs-${spec.tenant}.csv` });
    document.body.append(link); link.click(); link.remove();
  } }, "Export CSV");
  box.replaceChildren(el("div", { class: "grid" }, q, since, cause, csv), holder);
  redraw();
};

// ---------------------------------------------------------------- the loop

let busy = false;
async function load() {
  if (busy || document.getElementById("dialog").open) return;
  busy = true;
  try {
    await views[spec.view](root, load);
    root.removeAttribute("aria-busy");
    root.dataset.loaded = String(Date.now());
  } catch (err) {
    if (err.status !== 401) root.replaceChildren(el("p", { class: "error", role: "alert" }, err.message));
    root.removeAttribute("aria-busy");
    root.dataset.loaded = String(Date.now());  // drawn: with the API's reason instead of rows
  } finally {
    busy = false;
  }
}

const picker = document.getElementById("tenant-picker");
if (picker) picker.addEventListener("change", () => { if (picker.value) window.location = `/console/tenants/${picker.value}/users`; });
load();
if (spec.poll > 0 && spec.view !== "cdrs" && spec.view !== "import") setInterval(load, spec.poll * 1000);
