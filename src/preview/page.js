// The template preview page. Every value shown comes from GitLab payloads or templates, so the
// DOM is built with createElement/textContent/setAttribute only (no HTML is ever parsed), and only
// http(s) URLs become links.
"use strict";

const POLL_MS = 400;
let current = null; // the item id shown
let seen = { templates: null, events: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

function safeUrl(u) {
  try {
    const url = new URL(String(u));
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (_) {
    return null;
  }
}

function link(label, target) {
  const href = safeUrl(target);
  if (!href) return document.createTextNode(label);
  return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, label);
}

// Cliq markup: [label](url), {@id} mentions, *bold*, _italic_, ~strike~, `code`.
const TOKEN = /\[([^\]\n]+)\]\(([^)\s]+)\)|\{@([^}\s]+)\}|\*([^*\n]+)\*|_([^_\n]+)_|~([^~\n]+)~|`([^`\n]+)`/g;

function markup(text) {
  const out = document.createDocumentFragment();
  let last = 0;
  for (const m of String(text).matchAll(TOKEN)) {
    if (m.index > last) out.append(text.slice(last, m.index));
    if (m[1] !== undefined) out.append(link(m[1], m[2]));
    else if (m[3] !== undefined) out.append(el("span", { class: "chip", title: "mention " + m[3] }, "@" + m[3]));
    else if (m[4] !== undefined) out.append(el("strong", {}, markup(m[4])));
    else if (m[5] !== undefined) out.append(el("em", {}, markup(m[5])));
    else if (m[6] !== undefined) out.append(el("s", {}, markup(m[6])));
    else out.append(el("code", {}, m[7]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.append(text.slice(last));
  return out;
}

function asText(v) {
  return typeof v === "string" ? v : JSON.stringify(v);
}

function slide(s) {
  const box = el("div", { class: "slide" });
  if (s.title) box.append(el("div", { class: "slide-title" }, asText(s.title)));
  const data = s.data;
  if (s.type === "table" && data && Array.isArray(data.headers)) {
    const head = el("tr", {}, ...data.headers.map((h) => el("th", {}, asText(h))));
    const rows = (Array.isArray(data.rows) ? data.rows : []).map((r) =>
      el("tr", {}, ...data.headers.map((h) => el("td", {}, markup(asText(r && r[h] !== undefined ? r[h] : ""))))));
    box.append(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
  } else if (s.type === "list" && Array.isArray(data)) {
    box.append(el("ul", {}, ...data.map((d) => el("li", {}, markup(asText(d))))));
  } else if (s.type === "label" && Array.isArray(data)) {
    const rows = [];
    for (const pair of data) for (const [k, v] of Object.entries(pair || {})) rows.push(el("tr", {}, el("th", {}, k), el("td", {}, markup(asText(v)))));
    box.append(el("table", {}, el("tbody", {}, ...rows)));
  } else {
    box.append(el("div", { class: "text" }, markup(asText(data))));
  }
  return box;
}

function card(body) {
  const box = el("div", { class: "cliq" });
  const c = body && typeof body.card === "object" && body.card ? body.card : null;
  if (c) {
    if (c.theme) box.append(el("span", { class: "theme" }, asText(c.theme)));
    box.append(el("div", { class: "title" }, asText(c.title || "")));
  }
  box.append(el("div", { class: "text" }, markup(asText(body && body.text ? body.text : ""))));
  if (body && Array.isArray(body.slides)) for (const s of body.slides) box.append(slide(s || {}));
  if (body && Array.isArray(body.buttons)) {
    const row = el("div", { class: "buttons" });
    for (const b of body.buttons) {
      const label = asText((b && b.label) || "");
      const a = b && b.action;
      const web = a && a.type === "open.url" && a.data ? safeUrl(a.data.web) : null;
      row.append(web ? el("a", { href: web, target: "_blank", rel: "noopener noreferrer", class: "button" }, label)
                     : el("span", { class: "button", title: a ? asText(a.type) : "" }, label));
    }
    box.append(row);
  }
  return box;
}

function status(text) {
  document.getElementById("status").textContent = text;
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  return r.json();
}

async function show(id) {
  current = id;
  history.replaceState(null, "", "#" + encodeURIComponent(id));
  for (const b of document.querySelectorAll("nav button")) b.setAttribute("aria-current", String(b.dataset.item === id));
  let p;
  try {
    p = await getJson("/preview/render/" + encodeURIComponent(id));
  } catch (e) {
    status("cannot reach the bridge: " + e);
    return;
  }
  if (id !== current) return;
  const view = document.getElementById("view");
  const parts = [el("p", { class: "key" }, id + (p.key ? " → " + p.key : ""))];
  if (p.error) parts.push(el("ul", { class: "errors" }, el("li", {}, p.error)));
  if (Array.isArray(p.errors) && p.errors.length) parts.push(el("ul", { class: "errors", id: "errors" }, ...p.errors.map((e) => el("li", {}, e))));
  if (p.note) parts.push(el("p", { class: "note" }, p.note));
  for (const c of p.cards || []) {
    parts.push(el("div", { class: "channel" }, el("h2", {}, c.channel), card(c.body),
      el("pre", { class: "json" }, JSON.stringify(c.body, null, 2))));
  }
  view.replaceChildren(...parts);
  if (p.templates) seen.templates = p.templates;
  status("rendered " + new Date().toLocaleTimeString() + (p.templates ? " · templates " + p.templates.slice(0, 8) : ""));
}

function fill(listId, items) {
  const ul = document.getElementById(listId);
  ul.replaceChildren(...items.map((i) => {
    const b = el("button", { type: "button", "data-item": i.id, title: i.id }, i.label);
    b.addEventListener("click", () => show(i.id));
    if (i.id === current) b.setAttribute("aria-current", "true");
    return el("li", {}, b);
  }));
}

async function loadItems() {
  const items = await getJson("/preview/items");
  fill("events", items.events || []);
  fill("fixtures", items.fixtures || []);
  fill("samples", items.samples || []);
  document.getElementById("problems").replaceChildren(...(items.problems || []).map((p) => el("li", {}, p)));
  applyFilter();
}

function applyFilter() {
  const q = document.getElementById("filter").value.toLowerCase();
  for (const b of document.querySelectorAll("nav button")) b.parentElement.hidden = q !== "" && !b.textContent.toLowerCase().includes(q);
}

async function poll() {
  try {
    const v = await getJson("/preview/version");
    if (seen.events !== null && v.events !== seen.events) await loadItems();
    seen.events = v.events;
    if (current && seen.templates !== null && v.templates !== seen.templates) await show(current);
    seen.templates = v.templates;
  } catch (e) {
    status("cannot reach the bridge: " + e);
  }
  setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("filter").addEventListener("input", applyFilter);
  try {
    await loadItems();
    status("ready");
  } catch (e) {
    status("cannot list payloads: " + e);
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted) await show(wanted);
  poll();
});
