// photosearch web UI: plain JS over the JSON API (/openapi.json). No external assets.
"use strict";

const view = document.getElementById("view");
const banner = document.getElementById("banner");

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const csrf = document.querySelector('meta[name="csrf"]').content;

async function api(path, options = {}) {
  const opts = { credentials: "same-origin", ...options };
  opts.headers = { "X-Photosearch-CSRF": csrf };
  if (opts.body && typeof opts.body !== "string") {
    opts.body = JSON.stringify(opts.body);
    opts.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, opts);
  const doc = await r.json().catch(() => ({}));
  if (!r.ok) {
    const msg = doc.error || (doc.detail && JSON.stringify(doc.detail)) || r.statusText;
    showError(msg);
    throw new Error(msg);
  }
  if (banner.dataset.kind === "error") banner.hidden = true;  // a success clears an error, not an undo offer
  return doc;
}

function showError(msg) { banner.textContent = msg; banner.dataset.kind = "error"; banner.style.background = ""; banner.hidden = false; }

// The photo page's neighbours for the arrow keys (one handler for every page; null elsewhere).
let viewerNav = null;
window.addEventListener("keydown", e => {
  if (!viewerNav || (e.target.closest && e.target.closest("input, textarea, select"))) return;
  const other = e.key === "ArrowLeft" ? viewerNav.newer : e.key === "ArrowRight" ? viewerNav.older : null;
  // Not ready until the next photo is drawn: the hashchange event that says so comes later.
  if (other) { viewerNav = null; view.dataset.ready = ""; location.hash = `#/photo/${other}`; }
});

// Formats a browser shows as they are: the viewer loads the original; others (HEIC, RAW, TIFF)
// a large thumbnail.
const WEB_FORMATS = new Set(["JPEG", "PNG", "WEBP", "GIF", "BMP"]);

function thumb(id, size = 320) { return `/api/photos/${id}/thumb?size=${size}`; }

function clock(s) {
  s = Math.round(s || 0);
  const mm = String(Math.floor(s / 60) % 60).padStart(s >= 3600 ? 2 : 1, "0"), ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

function tile(r) {
  const video = r.media === "video";
  const p = params(), words = p.get("words") || (r.text ? p.get("q") : null);
  const query = new URLSearchParams();
  if (video && r.t != null) query.set("t", r.t);
  if (words) query.set("words", words);
  const href = `#/photo/${r.id}` + (query.toString() ? "?" + query.toString() : "");
  // As wide as the photo's shape asks in a justified row (no crop); the score only on hover.
  const a = r.width && r.height ? Math.min(3, Math.max(0.4, r.width / r.height)) : 1;
  const when = r.taken_at ? localDay(r.taken_at).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }) : "";
  return h("div", { class: "tile result" + (video ? " video" : ""), "data-id": r.id,
                    style: `--a:${a.toFixed(3)};flex-grow:${a.toFixed(3)};flex-basis:calc(var(--row) * ${a.toFixed(3)})`,
                    title: r.path.split("/").pop() + (r.score !== undefined ? ` \u00B7 match ${r.score.toFixed(2)}` : "") },
    h("a", { href }, h("img", { src: thumb(r.id), loading: "lazy", alt: r.path }),
      video ? h("span", { class: "badge" }, `\u25B6 ${clock(r.t)}`) : null),
    when ? h("div", { class: "meta" }, h("span", {}, when)) : null,
    r.text && r.text.length ? h("div", { class: "small tile-text" }, r.text[0].text) : null);
}

// The same folding as the server's (models/ocr.normalize_text): case and accents.
function fold(s) { return s.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase(); }

function params() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

// -- selecting in any grid ---------------------------------------------------------------------
// "Select" in the header turns clicks on tiles into a selection; the bar below acts on it (rate,
// tag, add to an album), each action with an Undo that sets every photo back as it was.

const selected = new Set();
const selectBar = h("div", { id: "select-bar", hidden: true });
document.body.append(selectBar);

function setSelecting(on) {
  document.body.classList.toggle("selecting", on);
  selected.clear();
  document.querySelectorAll(".selected").forEach(t => t.classList.remove("selected"));
  document.getElementById("select-toggle").textContent = on ? "Done" : "Select";
  renderSelectBar();
}

function groupBy(previous) {  // {id: value} -> Map(value -> [ids])
  const groups = new Map();
  for (const [pid, v] of Object.entries(previous)) {
    const k = v === undefined ? null : v;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(Number(pid));
  }
  return groups;
}

function renderSelectBar() {
  const on = document.body.classList.contains("selecting");
  selectBar.hidden = !on;
  if (!on) return;
  const ids = () => [...selected];
  const stars = h("select", { id: "bulk-rating" }, h("option", { value: "" }, "Rate\u2026"),
    [5, 4, 3, 2, 1].map(n => h("option", { value: n }, "\u2605".repeat(n))), h("option", { value: "clear" }, "Clear rating"));
  stars.addEventListener("change", async () => {
    if (!stars.value || !selected.size) return;
    const rating = stars.value === "clear" ? null : Number(stars.value);
    const r = await api("/api/photos/rating", { method: "POST", body: { photo_ids: ids(), rating } });
    undoToast(`Rated ${r.rated} photo${r.rated === 1 ? "" : "s"}.`, async () => {
      for (const [prev, group] of groupBy(r.previous))
        await api("/api/photos/rating", { method: "POST", body: { photo_ids: group, rating: prev } });
    }, false);
    stars.value = "";
  });
  const tagForm = h("form", { id: "bulk-tag-form" }, h("input", { id: "bulk-tag", placeholder: "Tag", size: 10 }),
    h("button", { type: "submit" }, "Add tag"));
  tagForm.addEventListener("submit", async e => {
    e.preventDefault();
    const tag = document.getElementById("bulk-tag").value.trim();
    if (!tag || !selected.size) return;
    const r = await api("/api/photos/tags", { method: "POST", body: { photo_ids: ids(), tag, state: "accepted" } });
    undoToast(`${r.tag} added to ${r.photos} photo${r.photos === 1 ? "" : "s"}.`, async () => {
      for (const [prev, group] of groupBy(r.previous))
        await api("/api/photos/tags", { method: "POST", body: { photo_ids: group, tag: r.tag, state: prev } });
    }, false);
  });
  const album = h("select", { id: "bulk-album" }, h("option", { value: "" }, "Add to album\u2026"));
  api("/api/albums").then(doc => doc.albums.filter(a => a.kind === "manual").forEach(a =>
    album.append(h("option", { value: a.name }, a.name))));
  album.addEventListener("change", async () => {
    const name = album.value;
    if (!name || !selected.size) return;
    const path = `/api/albums/${encodeURIComponent(name)}`;
    const had = new Set((await api(`${path}?limit=5000`)).results.map(x => x.id));
    const fresh = ids().filter(i => !had.has(i));
    const r = await api(`${path}/add`, { method: "POST", body: { photo_ids: ids() } });
    undoToast(`${r.added} added to ${name}.`,
      () => fresh.length ? api(`${path}/remove`, { method: "POST", body: { photo_ids: fresh } }) : null, false);
    album.value = "";
  });
  const away = h("button", { id: "bulk-quarantine", class: "danger", title: "Move the files to the library's quarantine folder (undoable)",
    onclick: async () => {
      if (!selected.size) return;
      const r = await api("/api/photos/quarantine", { method: "POST", body: { photo_ids: ids() } });
      const failed = r.report.failures.length;
      await route();
      undoJournal(`Quarantined ${r.report.moved} photo${r.report.moved === 1 ? "" : "s"}` +
        (failed ? `; ${failed} failed: ${r.report.failures[0].path}: ${r.report.failures[0].reason}` : "."), r.report.action);
    } }, "Quarantine");
  const shown = location.hash.match(/^#\/album\/(.+)$/);
  const out = shown ? h("button", { id: "bulk-album-remove", onclick: async () => {
    const name = decodeURIComponent(shown[1]), path = `/api/albums/${encodeURIComponent(name)}`;
    if (!selected.size) return;
    const taken = ids();
    const r = await api(`${path}/remove`, { method: "POST", body: { photo_ids: taken } });
    await route();
    undoToast(`${r.removed} taken out of ${name}.`, () => api(`${path}/add`, { method: "POST", body: { photo_ids: taken } }));
  } }, "Remove from album") : null;
  selectBar.replaceChildren(h("span", { id: "selected-count" }, `${selected.size} selected`), stars, tagForm, album,
    out, away, h("button", { onclick: () => setSelecting(true) }, "Clear"));
}

document.getElementById("select-toggle").addEventListener("click",
  () => setSelecting(!document.body.classList.contains("selecting")));

document.addEventListener("click", e => {
  if (!document.body.classList.contains("selecting")) return;
  const t = e.target.closest(".jtile, .tile.result");
  if (!t || !view.contains(t)) return;
  e.preventDefault();
  e.stopPropagation();
  const id = Number(t.dataset.id);
  if (selected.has(id)) selected.delete(id); else selected.add(id);
  t.classList.toggle("selected", selected.has(id));
  document.getElementById("selected-count").textContent = `${selected.size} selected`;
}, true);

// -- timeline: the home page -------------------------------------------------------------------

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"];

function localDay(iso) {  // "2023-05-01T10:00:00" -> that calendar day, whatever the browser's time zone
  const [y, m, d] = iso.slice(0, 10).split("-").map(Number);
  return new Date(y, m - 1, d);
}

function jtile(ph) {
  // Justified rows: each tile's width grows in proportion to its aspect ratio and its height
  // follows from it, so every tile of a full row has the same height and no photo is cropped.
  const a = ph.width && ph.height ? Math.min(4, Math.max(0.25, ph.width / ph.height)) : 1;
  const video = ph.media === "video";
  return h("a", { class: "jtile" + (video ? " video" : ""), href: `#/photo/${ph.id}`, "data-id": ph.id,
                  title: ph.path, style: `--a:${a.toFixed(3)};flex-grow:${a.toFixed(3)};flex-basis:calc(var(--row) * ${a.toFixed(3)})` },
    h("img", { src: thumb(ph.id), loading: "lazy", alt: ph.path }),
    video ? h("span", { class: "badge" }, `\u25B6 ${clock(ph.duration)}`) : null);
}

function searchBox(value = "") {
  const form = h("form", { class: "filters", id: "search-form" },
    h("input", { id: "q", name: "q", placeholder: "Search your photos: sunset at the beach", value }),
    h("button", { class: "primary", type: "submit" }, "Search"));
  form.addEventListener("submit", e => {
    e.preventDefault();
    const q = new FormData(form).get("q");
    if (q) location.hash = "#/search?" + new URLSearchParams({ q }).toString();
  });
  return form;
}

async function timelinePage() {
  const list = h("div", { id: "timeline", class: "timeline" });
  const scrub = h("nav", { id: "scrubber", class: "scrubber", "aria-label": "Jump to a month" });
  view.replaceChildren(searchBox(), h("div", { class: "timeline-wrap" }, list, scrub));
  const months = (await api("/api/timeline/months")).months;
  if (!months.length) {
    list.append(h("p", { class: "empty" }, "No photos yet. Index a folder (",
      h("code", {}, "photosearch index ~/Pictures"), ") and they appear here, newest first."));
    return;
  }
  let year = null;
  for (const m of months) {
    if (m.year !== year) { year = m.year; scrub.append(h("div", { class: "year" }, String(year))); }
    scrub.append(h("a", { href: "#/timeline?" + new URLSearchParams({ cursor: m.cursor }).toString(),
                          title: `${m.photos} photo${m.photos === 1 ? "" : "s"}` }, MONTHS[m.month - 1].slice(0, 3)));
  }
  let cursor = params().get("cursor") || "", month = null, day = null, row = null, busy = false, done = false;
  const sentinel = h("div", { class: "sentinel" });
  list.append(sentinel);
  async function more() {
    if (busy || done) return;
    busy = true;
    // A first screen of 200, then 1000 a request: a request costs about the same either way
    // (opening the catalog dominates), so a year at 100k photos is ~11 requests, not 50.
    const q = new URLSearchParams({ limit: cursor && month ? 1000 : 200 });
    if (cursor) q.set("cursor", cursor);
    const doc = await api("/api/timeline?" + q.toString()).finally(() => { busy = false; });
    for (const ph of doc.photos) {
      const d = localDay(ph.at);
      const mkey = ph.at.slice(0, 7), dkey = ph.at.slice(0, 10);
      if (mkey !== month) {
        month = mkey;
        list.insertBefore(h("h2", { class: "month", id: "m-" + mkey },
          d.toLocaleDateString(undefined, { year: "numeric", month: "long" })), sentinel);
      }
      if (dkey !== day) {
        day = dkey;
        list.insertBefore(h("h3", { class: "day" },
          d.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" })), sentinel);
        row = h("div", { class: "jrow" });
        list.insertBefore(row, sentinel);
      }
      row.append(jtile(ph));
    }
    cursor = doc.next;
    if (!doc.next) { done = true; sentinel.remove(); }
  }
  await more();
  new IntersectionObserver(es => { if (es.some(e => e.isIntersecting)) more(); }, { rootMargin: "1500px" }).observe(sentinel);
}

// -- search ------------------------------------------------------------------------------------

async function searchPage() {
  const p = params();
  const fields = ["words", "after", "before", "camera", "folder", "person", "tag", "event"];
  const form = h("form", { class: "filters", id: "search-form" },
    h("input", { id: "q", name: "q", placeholder: "Search your photos: sunset at the beach", value: p.get("q") || "",
                 autofocus: true }),
    ...fields.map(f => h("input", { name: f, placeholder: f, value: p.get(f) || "", size: 10 })),
    h("button", { class: "primary", type: "submit" }, "Search"));
  form.addEventListener("submit", e => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    location.hash = "#/search?" + next.toString();
  });
  const grid = h("div", { class: "jgrid", id: "results" });
  const more = h("div", { id: "more" });
  view.replaceChildren(form, grid, more);
  if (![...p.keys()].length) { grid.append(h("p", { class: "small" }, "Type what you are looking for.")); return; }
  let offset = 0, done = false, busy = false;
  const page = 40;
  async function load() {
    if (done || busy) return;
    busy = true;
    const q = new URLSearchParams(p);
    q.set("limit", page); q.set("offset", offset);
    const doc = await api("/api/search?" + q.toString()).finally(() => { busy = false; });
    doc.results.forEach(r => grid.append(tile(r)));
    offset += doc.results.length;
    if (doc.results.length < page) { done = true; if (!offset) grid.append(h("p", {}, "No results.")); }
  }
  await load();
  new IntersectionObserver(es => { if (es.some(e => e.isIntersecting)) load(); }).observe(more);
}

async function resultsPage(title, path) {
  view.replaceChildren(h("h2", {}, title), h("div", { class: "jgrid", id: "results" }));
  const doc = await api(path);
  const grid = document.getElementById("results");
  doc.results.forEach(r => grid.append(tile(r)));
  if (!doc.results.length) grid.append(h("p", {}, "No results."));
}

// -- one photo ---------------------------------------------------------------------------------

async function photoPage(id) {
  const doc = await api(`/api/photos/${id}`);
  const p = doc.photo;
  // A video plays from the matched moment (#t= media fragment; the file is served with ranges).
  const t = Number(params().get("t") || 0);
  const img = p.media === "video"
    ? h("video", { id: "photo", controls: "", preload: "metadata", poster: thumb(id, 640),
                   src: `/api/photos/${id}/file#t=${t}` })
    : h("img", { id: "photo", src: WEB_FORMATS.has(p.format) ? `/api/photos/${id}/file` : thumb(id, 1024),
                 alt: p.path, title: "Click to zoom" });
  const frame = h("div", { class: "frame" }, img);
  if (p.media !== "video") {
    // Zoom: the photo at its own pixels in a scrolling box (drag or scroll to pan); click again to fit.
    let drag = null, dragged = false;
    img.addEventListener("click", () => { if (!dragged) frame.classList.toggle("zoomed"); dragged = false; });
    frame.addEventListener("pointerdown", e => {
      if (frame.classList.contains("zoomed")) drag = [e.clientX, e.clientY, frame.scrollLeft, frame.scrollTop];
    });
    frame.addEventListener("pointermove", e => {
      if (!drag) return;
      const dx = e.clientX - drag[0], dy = e.clientY - drag[1];
      if (Math.abs(dx) + Math.abs(dy) > 4) dragged = true;
      frame.scrollLeft = drag[2] - dx; frame.scrollTop = drag[3] - dy;
      e.preventDefault();
    });
    for (const ev of ["pointerup", "pointerleave", "pointercancel"]) frame.addEventListener(ev, () => { drag = null; });
  }
  const detected = doc.faces.filter(f => f.model);
  const order = [...detected].sort((a, b) => a.x - b.x || a.y - b.y);
  doc.faces.forEach(f => {
    frame.append(h("div", { class: "face-box", style: `left:${f.x * 100}%;top:${f.y * 100}%;width:${f.w * 100}%;height:${f.h * 100}%` },
      h("span", {}, f.person || `face ${f.id}`)));
  });
  // Text read in the photo: each line outlined, the searched words filled; the lines below, selectable.
  const wanted = fold(params().get("words") || "").replace(/"/g, " ").split(/\s+/).filter(w => w.length >= 2);
  if (doc.text && doc.text.length && p.media !== "video") {
    // Inline SVG markup (the HTML parser gives it the SVG namespace); only numbers go into it.
    const n = v => Number(v).toFixed(5);
    let shapes = "";
    for (const line of doc.text) {
      shapes += `<polygon class="text-line" points="${[0, 2, 4, 6].map(i => `${n(line.quad[i])},${n(line.quad[i + 1])}`).join(" ")}"/>`;
      for (const [word, box] of line.words) {
        if (wanted.some(w => fold(word).includes(w))) {
          shapes += `<rect class="text-hit" x="${n(box[0])}" y="${n(box[1])}" width="${n(box[2])}" height="${n(box[3])}"/>`;
        }
      }
    }
    const holder = document.createElement("div");
    holder.innerHTML = `<svg class="text-boxes" viewBox="0 0 1 1" preserveAspectRatio="none">${shapes}</svg>`;
    frame.append(holder.firstChild);
  }
  const faceLinks = order.map((f, i) => {
    // Any face can be named here, one seen only once too (it has no cluster to name).
    const form = h("form", { class: "name-face", "data-face": f.id },
      h("input", { name: "name", placeholder: f.person ? "Rename" : "Name this face", size: 12, value: "" }),
      h("button", { type: "submit" }, "Name"));
    form.addEventListener("submit", async e => {
      e.preventDefault();
      const name = new FormData(form).get("name").trim();
      if (!name) return;
      const r = await api(`/api/faces/${f.id}/name`, { method: "POST", body: { name } });
      await route();
      undoJournal(`Named ${r.name}.`, r.journal);
    });
    const reject = f.person_id ? h("button", { class: "danger reject-face small", "data-face": f.id,
      title: `This face is not ${f.person || "this cluster"}`, onclick: async () => {
        const r = await api(`/api/faces/${f.id}/reject`, { method: "POST" });
        await route();
        undoJournal(`Face taken out of ${r.person || "its cluster"}.`, r.journal);
      } }, "Not them") : null;
    return h("div", { class: "face-row" },
      h("a", { href: `#/personof/${id}/${i + 1}` }, `This person (${f.person || "face " + (i + 1)})`),
      f.person_id ? h("a", { href: `#/person/${f.person_id}`, style: "margin-left:8px" }, "cluster") : null, form, reject);
  });
  const taken = p.taken_at ? new Date(p.taken_at).toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" }) : "";
  // Editing: stars and tags go through the same library calls as `rate` and `tag add|remove`;
  // each change offers an undo that sets the previous value back.
  async function setRating(n) {
    const r = await api(`/api/photos/${id}/rating`, { method: "POST", body: { rating: n } });
    await route();
    undoToast(n ? `Rated ${n} star${n > 1 ? "s" : ""}.` : "Rating cleared.",
      () => api(`/api/photos/${id}/rating`, { method: "POST", body: { rating: r.previous } }));
  }
  async function setTag(tag, state) {
    const r = await api(`/api/photos/${id}/tags`, { method: "POST", body: { tag, state } });
    await route();
    undoToast(`${r.tag}: ${state === "accepted" ? "added" : state === "rejected" ? "removed" : "automatic"}.`,
      () => api(`/api/photos/${id}/tags`, { method: "POST", body: { tag: r.tag, state: r.previous } }));
  }
  const stars = h("span", { id: "stars", class: "stars" }, [1, 2, 3, 4, 5].map(n =>
    h("button", { class: "star" + ((p.rating || 0) >= n ? " on" : ""), "data-n": n, title: p.rating === n ? "Clear the rating" : `${n} star${n > 1 ? "s" : ""}`,
                  onclick: () => setRating(p.rating === n ? null : n) }, (p.rating || 0) >= n ? "\u2605" : "\u2606")));
  const rows = [["taken", taken], ["place", doc.place || ""], ["camera", [p.camera_make, p.camera_model].filter(Boolean).join(" ")],
    ["rating", stars], ["description", p.description || ""], ["title", p.title || ""],
    ["size", `${p.width}x${p.height} ${p.format || ""}`],
    ["duration", p.media === "video" && p.duration != null ? clock(p.duration) : ""],
    ["GPS", p.gps_lat != null ? `${p.gps_lat.toFixed(5)}, ${p.gps_lon.toFixed(5)}` : ""],
    ["keywords", (p.keywords || []).join(", ")], ["people", doc.people.join(", ")], ["path", p.path]];
  // Previous / next in the timeline: buttons, the arrow keys, a swipe.
  const go = other => { if (other) location.hash = `#/photo/${other}`; };
  const nav = h("div", { class: "viewer-nav" },
    h("button", { id: "newer", disabled: !doc.newer, title: "Newer (\u2190)", onclick: () => go(doc.newer) }, "\u2190 Newer"),
    h("a", { href: "#/timeline" }, "All photos"),
    h("button", { id: "older", disabled: !doc.older, title: "Older (\u2192)", onclick: () => go(doc.older) }, "Older \u2192"));
  viewerNav = { newer: doc.newer, older: doc.older };
  let touch = null;
  frame.addEventListener("touchstart", e => { touch = e.touches[0].clientX; }, { passive: true });
  frame.addEventListener("touchend", e => {
    if (touch === null || frame.classList.contains("zoomed")) return;
    const dx = e.changedTouches[0].clientX - touch;
    touch = null;
    if (Math.abs(dx) > 60) go(dx > 0 ? doc.newer : doc.older);
  });
  view.replaceChildren(nav, h("div", { class: "photo-view" },
    h("div", {}, frame),
    h("div", {},
      h("table", { class: "kv" }, rows.filter(r => r[1]).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "small" }, v)))),
      h("p", {}, h("a", { href: `#/like/${id}`, id: "more-like" }, "More like this"), " · ",
        h("a", { href: `/api/photos/${id}/file`, target: "_blank" }, "Original")),
      albumPicker(id),
      h("div", {}, faceLinks),
      doc.text && doc.text.length ? h("h3", {}, "Text in the photo") : null,
      doc.text && doc.text.length ? h("pre", { id: "photo-text", class: "photo-text" }, doc.text.map(l => l.text).join("\n")) : null,
      doc.tags.some(t => t.on || t.state === "rejected") ? h("h3", {}, "Tags") : null,
      // Only the tags that hold (above their threshold, or accepted), and the ones rejected by hand,
      // struck through; the score shows on hover.
      h("div", { id: "tags" }, doc.tags.filter(t => t.on || t.state === "rejected").map(t =>
        h("span", { class: "chip" + (t.on ? " on" : "") + (t.state === "rejected" ? " rejected" : ""), "data-tag": t.tag,
                    title: `${t.state}${t.score != null ? ", score " + t.score.toFixed(2) : ""}` },
          t.tag + (t.state === "accepted" ? " \u2713" : ""),
          h("button", { class: "chip-x", title: t.on ? "Remove this tag" : "Back to automatic",
                        onclick: () => setTag(t.tag, t.on ? "rejected" : null) }, t.on ? "\u00D7" : "\u21BA")))),
      (() => {
        const f = h("form", { id: "add-tag-form", class: "add-tag" },
          h("input", { id: "add-tag", name: "tag", placeholder: "Add a tag", size: 14 }),
          h("button", { type: "submit" }, "Add"));
        f.addEventListener("submit", e => { e.preventDefault(); const t = new FormData(f).get("tag").trim(); if (t) setTag(t, "accepted"); });
        return f;
      })())));
}

// -- albums ------------------------------------------------------------------------------------

async function albumsPage() {
  const doc = await api("/api/albums");
  const form = h("form", { id: "new-album", class: "filters" },
    h("input", { id: "album-name", name: "name", placeholder: "New album name", required: true }),
    h("input", { id: "album-query", name: "query", placeholder: "Smart album: a search (optional)", size: 28 }),
    h("button", { class: "primary", type: "submit" }, "Create"));
  form.addEventListener("submit", async e => {
    e.preventDefault();
    const f = new FormData(form), body = { name: f.get("name").trim() };
    if (f.get("query").trim()) body.query = f.get("query").trim();
    const made = await api("/api/albums", { method: "POST", body });
    location.hash = `#/album/${encodeURIComponent(made.name)}`;
    undoToast(`Made the album ${made.name}.`, async () => {
      await api(`/api/albums/${encodeURIComponent(made.name)}/delete`, { method: "POST" });
      location.hash = "#/albums";
    }, false);
  });
  const list = h("div", { class: "grid albums", id: "albums" }, doc.albums.map(a =>
    h("a", { class: "tile album-card", href: `#/album/${encodeURIComponent(a.name)}`, "data-album": a.name },
      h("div", { class: "memory-text" }, h("strong", {}, a.name),
        h("span", { class: "small" }, a.kind === "smart" ? `smart: ${a.query || JSON.stringify(a.filters)}`
                                                         : `${a.photos} photo${a.photos === 1 ? "" : "s"}`)))));
  view.replaceChildren(h("h2", {}, "Albums"), form,
    doc.albums.length ? list : h("p", { class: "empty" }, "No albums yet. Name one above, then add photos to it from a photo's page (or make it smart: a search kept live)."));
}

async function albumPage(name) {
  const doc = await api(`/api/albums/${encodeURIComponent(name)}`);
  const a = doc.album;
  const grid = h("div", { class: "jgrid", id: "results" }, doc.results.map(r => tile(r)));
  view.replaceChildren(h("h2", {}, a.name),
    h("p", { class: "small" }, a.kind === "smart" ? `Smart album: ${a.query || JSON.stringify(a.filters)} (kept live)` : `${a.photos} photos`),
    doc.results.length ? grid : h("p", { class: "empty" }, a.kind === "smart" ? "Nothing matches this search yet." :
      "This album is empty: open a photo and use \u201cAdd to album\u201d."));
}

// -- people ------------------------------------------------------------------------------------

async function peoplePage() {
  const [doc, sugg] = await Promise.all([api("/api/people"), api("/api/people/suggestions?limit=10")]);
  const grid = h("div", { class: "grid", id: "people" });
  // Every edit here is journaled: its toast's Undo puts people and faces back as they were.
  const merge = async (ids, what) => {
    const r = await api("/api/people/merge", { method: "POST", body: { people: ids } });
    await route();
    undoJournal(`${what}: now ${r.name || "one cluster"}.`, r.journal);
  };
  const mergeButton = h("button", { id: "merge-selected", disabled: true, onclick: () =>
    merge([...grid.querySelectorAll("input.pick:checked")].map(c => Number(c.value)), "Merged") }, "Merge selected");
  const firstFace = async pid => (await api(`/api/people/${pid}?limit=1`)).faces[0];
  const suggestions = h("div", { id: "suggestions" });
  if (sugg.suggestions.length) {
    suggestions.append(h("h3", {}, "Same person?"));
    for (const s of sugg.suggestions) {
      const [fa, fb] = await Promise.all([firstFace(s.a.id), firstFace(s.b.id)]);
      const face = (f, p) => h("a", { href: `#/person/${p.id}`, title: `${p.name || "Unnamed " + p.id}, ${p.faces} faces` },
        f ? h("img", { src: `/api/faces/${f.id}/thumb`, alt: p.name || "cluster" }) : "-");
      suggestions.append(h("div", { class: "suggestion", "data-pair": `${s.a.id}-${s.b.id}`, title: `similarity ${s.similarity.toFixed(2)}` },
        face(fa, s.a), face(fb, s.b),
        h("span", { class: "small" }, `${s.a.name || "Unnamed " + s.a.id} and ${s.b.name || "Unnamed " + s.b.id}`),
        h("button", { class: "primary same", onclick: () => merge([s.a.id, s.b.id], "Merged") }, "Same person"),
        h("button", { class: "not-same", onclick: async () => {
          const r = await api("/api/people/not-same", { method: "POST", body: { people: [s.a.id, s.b.id] } });
          await route();
          undoJournal("Not suggested again.", r.journal); } }, "Not the same")));
    }
  }
  view.replaceChildren(h("h2", {}, "People"), suggestions, h("p", {}, mergeButton,
    h("span", { class: "small" }, " tick two or more, or drag one onto another, to make them one person")), grid);
  if (!doc.people.length) grid.append(h("p", { class: "empty" }, "No people yet: index photos with faces."));
  for (const p of doc.people) {
    const f = await firstFace(p.id);
    const pick = h("input", { type: "checkbox", class: "pick", value: p.id, title: "Select to merge" });
    pick.addEventListener("change", () => { mergeButton.disabled = grid.querySelectorAll("input.pick:checked").length < 2; });
    // Drag a person onto another to merge the two.
    const card = h("div", { class: "tile person", "data-id": p.id, draggable: "true", title: "Drag onto another person to merge" },
      h("a", { href: `#/person/${p.id}`, draggable: "false" },
        f ? h("img", { src: `/api/faces/${f.id}/thumb`, alt: p.name || "cluster", draggable: "false" }) : h("div", {}, "-")),
      h("div", { class: "meta" }, h("span", {}, pick, " ", p.name || `Unnamed ${p.id}`), h("span", {}, `${p.faces} faces`)));
    card.addEventListener("dragstart", e => { e.dataTransfer.setData("text/plain", String(p.id)); e.dataTransfer.effectAllowed = "move"; });
    card.addEventListener("dragover", e => { e.preventDefault(); card.classList.add("drop"); });
    card.addEventListener("dragleave", () => card.classList.remove("drop"));
    card.addEventListener("drop", e => {
      e.preventDefault();
      card.classList.remove("drop");
      const other = Number(e.dataTransfer.getData("text/plain"));
      if (other && other !== p.id) merge([p.id, other], "Merged");
    });
    grid.append(card);
  }
}

async function personPage(id) {
  const doc = await api(`/api/people/${id}`);
  const name = h("input", { id: "person-name", value: doc.person.name || "", placeholder: "Name" });
  const save = h("button", { class: "primary", id: "save-name", onclick: async () => {
    const r = await api(`/api/people/${id}/name`, { method: "POST", body: { name: name.value } });
    location.hash = `#/person/${r.id}`; await route();
    undoJournal(`Named ${r.name}` + (r.merged.length ? " (merged with the person of that name)." : "."), r.journal);
  } }, "Save name");
  const mergeWith = h("input", { id: "merge-with", placeholder: "merge with id(s)", size: 12 });
  const merge = h("button", { onclick: async () => {
    const ids = mergeWith.value.split(/[ ,]+/).filter(Boolean);
    const r = await api("/api/people/merge", { method: "POST", body: { people: [id, ...ids] } });
    location.hash = `#/person/${r.id}`; await route();
    undoJournal("Merged.", r.journal);
  } }, "Merge");
  const grid = h("div", { class: "grid" });
  for (const f of doc.faces) {
    grid.append(h("div", { class: "tile face", "data-face": f.id },
      h("a", { href: `#/photo/${f.photo_id}` }, h("img", { src: `/api/faces/${f.id}/thumb`, loading: "lazy" })),
      h("div", { class: "meta" }, h("span", {}, `face ${f.id}`),
        h("button", { class: "danger reject", onclick: async () => {
          const r = await api(`/api/faces/${f.id}/reject`, { method: "POST" });
          await route();
          undoJournal(`Face ${f.id} taken out.`, r.journal); } }, "Not them"))));
  }
  view.replaceChildren(h("h2", {}, doc.person.name || `Unnamed cluster ${id}`),
    h("p", {}, name, " ", save, " ", mergeWith, " ", merge, " ", h("a", { href: `#/search?person=${encodeURIComponent(doc.person.name || "")}` }, doc.person.name ? "Photos of them" : "")),
    grid);
}

// -- duplicates --------------------------------------------------------------------------------

async function dupesPage() {
  const method = params().get("method") || "both";
  const doc = await api("/api/dupes?method=" + encodeURIComponent(method));
  const undo = h("button", { id: "undo", onclick: async () => {
    const r = await api("/api/undo", { method: "POST" });
    banner.hidden = true; alertInfo(`Undid ${r.action}: ${r.restored.length} files restored`); route(); } }, "Undo last action");
  const list = h("div", { id: "groups" });
  const pick = h("select", { id: "method", onchange: e => { location.hash = "#/dupes?method=" + e.target.value; } },
    ["both", "hash", "clip"].map(m => h("option", { value: m, selected: m === method }, m)));
  view.replaceChildren(h("h2", {}, "Duplicates"), h("p", {}, "Signals: ", pick, " ", undo), list);
  if (!doc.groups.length) list.append(h("p", {}, "No duplicates found."));
  doc.groups.forEach((g, n) => {
    // A choice per photo: tick the copies to quarantine (the keeper takes what they knew), or
    // tell one copy apart from the keeper; the buttons of the header act on the whole group.
    const chosen = new Set();
    const moved = async body => {
      const r = await api("/api/dupes/quarantine", { method: "POST", body: { ...body, method } });
      await route();
      const rep = r.report, failed = rep.failures.length;
      undoJournal(`Quarantined ${rep.moved}, merged into ${rep.merged} keeper${rep.merged === 1 ? "" : "s"}` +
        (failed ? `; ${failed} failed: ${rep.failures[0].path}: ${rep.failures[0].reason}` : "."), rep.action);
    };
    const notDupes = async photos => {
      const r = await api("/api/dupes/keep-both", { method: "POST", body: { photos } });
      await route();
      undoJournal("Not duplicates: never grouped again.", r.journal);
    };
    const moveChosen = h("button", { class: "quarantine-chosen", disabled: true, onclick: () => moved({ photo_ids: [...chosen] }) },
      "Quarantine the chosen");
    const keeper = g.members.find(m => m.path === g.keeper);
    list.append(h("div", { class: "group", "data-keeper": g.keeper },
      h("div", {}, h("strong", {}, `Group ${n + 1} (${g.kind})`), " ",
        h("button", { class: "quarantine", onclick: () => moved({ keeper: g.keeper }) }, "Quarantine the others"), " ",
        moveChosen, " ",
        h("button", { class: "keep-both", onclick: () => notDupes(g.members.map(m => m.path)) }, "Not duplicates")),
      h("div", { class: "members" }, g.members.map(m => {
        const isKeeper = m.path === g.keeper;
        const choice = isKeeper ? h("span", { class: "small" }, "the keeper") : h("span", {},
          h("label", { class: "small" }, h("input", { type: "checkbox", class: "choose", "data-id": m.id, onchange: e => {
            if (e.target.checked) chosen.add(m.id); else chosen.delete(m.id);
            moveChosen.disabled = chosen.size === 0; } }), " quarantine"), " ",
          h("button", { class: "not-dupe small", onclick: () => notDupes([keeper.path, m.path]) }, "Not a duplicate"));
        return h("div", { class: "member" + (isKeeper ? " keeper" : ""), "data-id": m.id },
          h("a", { href: `#/photo/${m.id}` }, h("img", { src: thumb(m.id), loading: "lazy" })),
          h("div", { class: "small" }, `${isKeeper ? "KEEP · " : ""}${m.width}x${m.height} · ${(m.size / 1e6).toFixed(1)} MB · ${m.format || ""}`),
          h("div", { class: "small" }, m.why),
          h("div", { class: "small" }, m.path), choice);
      }))));
  });
}

function albumPicker(id) {
  // Manual albums only (a smart album's photos are its search's); undo takes the photo out again.
  const select = h("select", { id: "album-pick" }, h("option", { value: "" }, "Add to album\u2026"));
  api("/api/albums").then(doc => doc.albums.filter(a => a.kind === "manual").forEach(a =>
    select.append(h("option", { value: a.name }, a.name))));
  select.addEventListener("change", async () => {
    const name = select.value;
    if (!name) return;
    const body = { photo_ids: [Number(id)] };
    // A new addition withdraws the offer to undo an earlier one (still shown for a few seconds):
    // its Undo, clicked now, would race this request.
    if (banner.dataset.kind === "undo") banner.hidden = true;
    await api(`/api/albums/${encodeURIComponent(name)}/add`, { method: "POST", body });
    await route();
    undoToast(`Added to ${name}.`, () => api(`/api/albums/${encodeURIComponent(name)}/remove`, { method: "POST", body }));
  });
  return h("div", { class: "add-album" }, select);
}

function undoToast(msg, undo, refresh = true) {
  banner.replaceChildren(msg + " ", h("button", { id: "undo-edit", onclick: async () => {
    banner.hidden = true;
    const at = location.hash;
    await undo();
    // Redraw the page showing what changed (not one opened since; a selection's bar keeps its selection).
    if (refresh && location.hash === at) await route();
  } }, "Undo"));
  banner.style.background = "#1f4a2a";
  banner.dataset.kind = "undo";
  banner.hidden = false;
  clearTimeout(undoToast.timer);
  undoToast.timer = setTimeout(() => { banner.hidden = true; banner.style.background = ""; }, 10000);
}

// A journaled action (people edits, "not duplicates", quarantine, sync): its undo is the library's
// `undo` of that very action, refused if another was journaled after it.
function undoJournal(msg, action, refresh = true) {
  if (!action) { alertInfo(msg); return; }
  undoToast(msg, () => api("/api/undo", { method: "POST", body: { action } }), refresh);
}

function alertInfo(msg) { banner.textContent = msg; banner.dataset.kind = "info"; banner.hidden = false; banner.style.background = "#1f4a2a"; setTimeout(() => { banner.hidden = true; banner.style.background = ""; }, 4000); }

// -- review ------------------------------------------------------------------------------------

async function reviewPage() {
  const p = params();
  const q = new URLSearchParams({ below: p.get("below") || "0.6", above: p.get("above") || "0.3", limit: "50" });
  const doc = await api("/api/review?" + q.toString());
  let i = 0;
  function show(first = 0) {
    const item = doc.items[i];
    if (!item) {
      view.replaceChildren(h("h2", {}, "Review"), h("p", { class: "empty" }, i ? "That was the last one: nothing more to review." :
        "Nothing to review: no tag proposal is in doubt. Scores come from ", h("code", {}, "photosearch tag"),
        "; see every proposal with ", h("a", { href: "#/review?below=1&above=0" }, "all scores"), "."));
      return;
    }
    let k = first;
    function render() {
      const t = item.tags[k];
      if (!t) { i += 1; show(); return; }
      view.replaceChildren(h("h2", {}, `Review ${i + 1}/${doc.items.length}`),
        h("div", { class: "review-item" },
          h("img", { src: thumb(item.photo_id, 640), alt: item.path }),
          h("div", {}, h("p", { class: "small" }, item.path),
            h("p", { id: "proposal" }, h("strong", {}, t.tag), ` (${t.score.toFixed(2)})?`),
            h("div", { class: "decision" },
              h("button", { class: "primary", id: "accept", onclick: () => decide(true) }, "Yes ", h("kbd", {}, "y")),
              h("button", { class: "danger", id: "reject", onclick: () => decide(false) }, "No ", h("kbd", {}, "n")),
              h("button", { id: "skip", onclick: () => { k += 1; render(); } }, "Skip ", h("kbd", {}, "s"))))));
    }
    async function decide(accept) {
      const tag = item.tags[k].tag, at = [i, k];
      await api("/api/review/decide", { method: "POST", body: { photo_id: item.photo_id, tag, accept } });
      k += 1; render();
      // The queue holds proposals nobody decided: undo sets the tag back to automatic and asks again.
      undoToast(`${tag}: ${accept ? "yes" : "no"}.`, async () => {
        await api(`/api/photos/${item.photo_id}/tags`, { method: "POST", body: { tag, state: null } });
        i = at[0]; show(at[1]);
      }, false);
    }
    reviewKeys = e => {
      if (e.target.tagName === "INPUT") return;
      if (e.key === "y") decide(true); else if (e.key === "n") decide(false); else if (e.key === "s") { k += 1; render(); }
    };
    render();
  }
  show();
}
let reviewKeys = null;
document.addEventListener("keydown", e => { if (reviewKeys && location.hash.startsWith("#/review")) reviewKeys(e); });

// -- sync --------------------------------------------------------------------------------------

async function syncPage() {
  // Each file's pending changes, ticked to be written; what failed stays listed with its reason.
  const doc = await api("/api/sync");
  const failures = syncPage.failures || new Map();
  syncPage.failures = null;
  const ticks = new Map();
  const count = h("span", { id: "sync-count", class: "small" });
  const apply = h("button", { class: "primary", id: "apply-sync", onclick: async () => {
    const ids = [...ticks].filter(([, c]) => c.checked).map(([pid]) => pid);
    if (!ids.length) return;
    apply.disabled = true;
    const r = await api("/api/sync/apply", { method: "POST", body: { photo_ids: ids } }).finally(() => { apply.disabled = false; });
    const failed = r.files.filter(f => f.status === "failed");
    syncPage.failures = new Map(failed.map(f => [f.photo_id, f.reason || f.error || "failed"]));
    await route();
    const msg = `Wrote ${r.files.length - failed.length} file${r.files.length - failed.length === 1 ? "" : "s"}` +
      (failed.length ? `, ${failed.length} failed (reasons below)` : ".");
    // The write is journaled: Undo puts every file back byte for byte.
    const action = (r.files.find(f => f.action) || {}).action;
    if (action) undoJournal(msg, action);
    else if (r.files.length > failed.length) alertInfo(msg);
    else showError(msg);
  } }, "Write the ticked files");
  const update = () => {
    const n = [...ticks.values()].filter(c => c.checked).length;
    count.textContent = ` ${n} of ${ticks.size} ticked`;
    apply.disabled = n === 0;
  };
  const all = h("label", { class: "small" }, h("input", { type: "checkbox", id: "sync-all", checked: true, onchange: e => {
    ticks.forEach(c => { c.checked = e.target.checked; }); update(); } }), " all");
  const cards = doc.files.map(f => {
    const tick = h("input", { type: "checkbox", class: "sync-pick", checked: true, "data-id": f.photo_id, onchange: update });
    ticks.set(f.photo_id, tick);
    const why = failures.get(f.photo_id);
    return h("div", { class: "group sync-file" + (why ? " failed" : ""), "data-id": f.photo_id },
      h("label", { class: "small" }, tick, " ", f.path + (f.sidecar ? ` (sidecar ${f.target})` : "")),
      why ? h("div", { class: "error small" }, `Not written: ${why}`) : null,
      h("pre", {}, f.changes.join("\n")));
  });
  view.replaceChildren(h("h2", {}, "Pending metadata changes"),
    doc.files.length ? h("p", {}, apply, " ", all, count) : h("p", { class: "empty" },
      "Nothing to write: the files already hold everything. Tags, ratings, people and albums you set appear here first."),
    ...cards);
  if (doc.files.length) update();
}

// -- memories and films -----------------------------------------------------------------------

async function memoriesPage() {
  const doc = await api("/api/memories");
  const grid = h("div", { class: "grid memories", id: "memories" });
  const length = h("select", { id: "film-duration" }, [15, 30, 60].map(s => h("option", { value: s, selected: s === 30 }, `${s} s`)));
  const size = h("select", { id: "film-size" }, ["720p", "1080p"].map(s => h("option", { value: s }, s)));
  view.replaceChildren(h("h2", {}, "Memories"),
    h("p", { class: "small" }, "Films worth making from your library. Each renders here, or with ",
      h("code", {}, "photosearch film --memory ID --out film.mp4"), "."),
    h("p", {}, "Length ", length, " size ", size), grid);
  if (!doc.memories.length) {
    grid.append(h("p", {}, "No memories yet: they come from events, dated photos and named people with at least 6 photos."));
  }
  for (const m of doc.memories) {
    const status = h("div", { class: "small film-status" });
    const make = h("button", { class: "primary make-film",
      onclick: () => makeFilm(m, status, make, Number(length.value), size.value) }, "Make a film");
    const card = h("div", { class: "tile memory", "data-id": m.id },
      m.cover != null ? h("img", { src: thumb(m.cover), loading: "lazy", alt: m.title }) : null,
      h("div", { class: "memory-text" }, h("strong", {}, m.title), h("div", { class: "small" }, m.subtitle || ""),
        h("div", { class: "small" }, `${m.photos} photos and videos`), make, status));
    grid.append(card);
  }
}

async function makeFilm(m, status, button, duration, size) {
  button.disabled = true;
  const job = await api("/api/films", { method: "POST", body: { memory: m.id, duration, size } })
    .catch(() => { button.disabled = false; return null; });
  if (!job) return;
  const bar = h("progress", { max: 1, value: 0 });
  status.replaceChildren("Rendering… ", bar);
  for (;;) {
    await new Promise(r => setTimeout(r, 500));
    const s = await api(`/api/films/${job.job}`);
    if (s.total) { bar.max = s.total; bar.value = s.done; }
    if (s.state === "failed") { status.replaceChildren(`Failed: ${s.error}`); button.disabled = false; return; }
    if (s.state === "done") {
      status.replaceChildren(h("video", { class: "film", controls: true, src: `/api/films/${job.job}/file` }),
        h("a", { href: `/api/films/${job.job}/file`, download: `${job.job}.mp4` }, "Download"));
      button.disabled = false;
      return;
    }
  }
}

// -- router ------------------------------------------------------------------------------------

// One page drawn at a time, in the order asked: a redraw still waiting for its data (after an
// undo, say) must not land over a page opened since.
let routing = Promise.resolve();
function route() {
  routing = routing.then(drawPage, drawPage);
  return routing;
}

async function drawPage() {
  const hash = location.hash || "#/timeline";
  const [path] = hash.slice(2).split("?");
  const parts = path.split("/");
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.nav === parts[0]));
  // On a phone the menu scrolls sideways: keep the page's own entry in sight.
  const active = document.querySelector("nav a.active");
  if (active) active.scrollIntoView({ block: "nearest", inline: "nearest" });
  viewerNav = null;
  if (document.body.classList.contains("selecting")) setSelecting(false);
  try {
    if (parts[0] === "photo") await photoPage(parts[1]);
    else if (parts[0] === "like") await resultsPage("More like this", `/api/photos/${parts[1]}/like`);
    else if (parts[0] === "personof") await resultsPage("This person", `/api/photos/${parts[1]}/person?face=${parts[2]}`);
    else if (parts[0] === "people") await peoplePage();
    else if (parts[0] === "person") await personPage(parts[1]);
    else if (parts[0] === "dupes") await dupesPage();
    else if (parts[0] === "review") await reviewPage();
    else if (parts[0] === "sync") await syncPage();
    else if (parts[0] === "memories") await memoriesPage();
    else if (parts[0] === "albums") await albumsPage();
    else if (parts[0] === "album") await albumPage(decodeURIComponent(parts.slice(1).join("/")));
    else if (parts[0] === "search") await searchPage();
    else await timelinePage();
    view.dataset.ready = parts[0] || "timeline";
  } catch (e) {
    view.dataset.ready = "error";
  }
}
// A file kept without a picture (a camera file whose pixels did not decode) has no thumbnail:
// its tile shows a plain "no picture" panel instead of a broken image.
document.addEventListener("error", e => {
  const img = e.target;
  if (img.tagName === "IMG" && img.src.includes("/thumb") && !img.classList.contains("nopic")) {
    img.classList.add("nopic");
    img.alt = "no picture";
  }
}, true);
window.addEventListener("hashchange", () => { view.dataset.ready = ""; route(); });
route();
