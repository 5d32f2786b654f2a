// DatasetExplorer: a virtualised grid over GET /datasets/{id}/rows. The kernel hands over the
// version's columns, row count, first page and profile; every later page is fetched here, by the
// browser, a page at a time into a small LRU cache, so scrolling ten million rows never goes
// through the kernel. Only the rows in view are in the DOM; the scroll spacer stands for the rest.
// Every value from the data or the dataset's owner becomes a text node (textContent), never markup.
// Without a kernel (the sidebar's main-area tab) the model arrives with only the dataset's id and
// name: this module then loads the same first state the kernel would, over REST.

const EXPLORER_ROW_H = 26;        // px; fixed, so a row index maps to an offset and back
const EXPLORER_VIEW_H = 416;      // px of rows in view (16 rows)
const EXPLORER_MAX_PX = 4000000;  // browsers cap element heights (~17M px in Firefox): beyond this the scrollbar maps proportionally
const EXPLORER_CACHE_PAGES = 48;  // pages kept (LRU)
const EXPLORER_PARALLEL = 2;      // requests in flight at once
const EXPLORER_OVERSCAN = 40;     // rows fetched beyond the view, both ways
const EXPLORER_NUM_W = 84;        // px of the row-number column
const EXPLORER_BARE = /^[A-Za-z_][A-Za-z0-9_.\-]*$/;
const EXPLORER_FILTER_HELP = 'Clauses joined by "and": column op value, op one of = != < <= > >= contains startswith; '
  + 'value a number, "string", true, false or null; or column is [not] null; or column in (v1, v2). '
  + 'Example: label = "cat" and score >= 0.5';

const EXPLORER_CSS = `
.ais-explorer .ais-x-scroll { position: relative; overflow: auto; height: ${EXPLORER_VIEW_H}px; outline: none;
  border: 1px solid var(--jp-border-color2, #ddd); border-top: 0; }
.ais-explorer .ais-x-head { overflow: hidden; border: 1px solid var(--jp-border-color2, #ddd); background: var(--jp-layout-color2, #f3f3f3); }
.ais-explorer .ais-x-headrow, .ais-explorer .ais-x-row { display: flex; height: ${EXPLORER_ROW_H}px; line-height: ${EXPLORER_ROW_H}px; }
.ais-explorer .ais-x-spacer { position: relative; overflow: hidden; }
.ais-explorer .ais-x-layer { position: absolute; left: 0; top: 0; will-change: transform; }
.ais-explorer .ais-x-row:nth-child(even) { background: var(--jp-layout-color2, #fafafa); }
.ais-explorer .ais-x-cell { flex: none; padding: 0 6px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
  border-right: 1px solid var(--jp-border-color3, #eee); }
.ais-explorer .ais-x-num { color: var(--jp-ui-font-color2, #888); text-align: right; font-variant-numeric: tabular-nums; }
.ais-explorer .ais-x-right { text-align: right; font-variant-numeric: tabular-nums; }
.ais-explorer .ais-x-null { color: var(--jp-ui-font-color3, #aaa); font-style: italic; }
.ais-explorer .ais-x-pending { color: var(--jp-ui-font-color3, #bbb); }
.ais-explorer .ais-x-th { cursor: pointer; font-weight: 600; user-select: none; }
.ais-explorer .ais-x-th:hover { background: var(--jp-layout-color3, #e6e6e6); }
.ais-explorer .ais-x-type { font-weight: 400; color: var(--jp-ui-font-color2, #888); font-size: 11px; margin-left: 4px; }
.ais-explorer .ais-x-filter { flex: 1 1 240px; font-family: var(--jp-code-font-family, monospace); padding: 2px 4px; }
.ais-explorer .ais-x-inline-error { color: var(--jp-error-color1, #d32f2f); white-space: pre-wrap; }
.ais-explorer .ais-x-picker { display: flex; flex-wrap: wrap; gap: 4px 12px; max-height: 140px; overflow: auto; padding: 4px 0; }
.ais-explorer .ais-x-stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 8px; }
.ais-explorer .ais-x-stat canvas { width: 100%; height: 70px; display: block; }
.ais-explorer .ais-x-stat .ais-chart { position: relative; }
.ais-explorer .ais-x-kv { display: grid; grid-template-columns: auto 1fr; gap: 0 8px; font-size: 12px; }
.ais-explorer .ais-x-kv > span:nth-child(odd) { color: var(--jp-ui-font-color2, #777); }
.ais-explorer .ais-x-top { cursor: pointer; }
.ais-explorer .ais-x-top:hover { text-decoration: underline; }
.ais-explorer .ais-x-goto { width: 110px; }
.ais-explorer .ais-x-statname { font-weight: 600; }
`;

function explorerStyle() {
  if (document.getElementById('ais-explorer-style')) return;
  document.head.appendChild(aisEl('style', { id: 'ais-explorer-style' }, EXPLORER_CSS));
}

// A column as the rows API's grammar names it: bare when it can be, else a JSON string.
function explorerRef(name) {
  return EXPLORER_BARE.test(name) ? name : JSON.stringify(name);
}

// "a,-b,\"x,y\"" -> [{name, desc}]; the API's own parser is the judge, this only reads it back.
function explorerParseSort(text) {
  const out = [];
  let i = 0;
  const s = text || '';
  while (i < s.length) {
    while (s[i] === ' ') i += 1;
    let desc = false;
    if (s[i] === '-') { desc = true; i += 1; }
    let name = '';
    if (s[i] === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      try { name = JSON.parse(s.slice(i, j + 1)); } catch (e) { name = s.slice(i + 1, j); }
      i = j + 1;
    } else {
      const j = s.indexOf(',', i);
      name = (j < 0 ? s.slice(i) : s.slice(i, j)).trim();
      i = j < 0 ? s.length : j;
    }
    if (name) out.push({ name, desc });
    while (i < s.length && s[i] !== ',') i += 1;
    i += 1;
  }
  return out;
}

function explorerCellText(value) {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function explorerNumeric(type) {
  return /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|REAL|DECIMAL)/i.test(type || '');
}

function explorerWidth(col) {
  if (explorerNumeric(col.type)) return 110;
  if (/^BOOL/i.test(col.type || '')) return 80;
  if (/^(DATE|TIME)/i.test(col.type || '')) return 170;
  return 180;
}

function explorerRange(first, last, total) {
  if (!total) return 'no rows';
  return `rows ${aisFormat.int(first)}–${aisFormat.int(last)} of ${aisFormat.int(total)}`;
}

function renderExplorer({ model, el }) {
  explorerStyle();
  el.classList.add('ais-explorer');
  const datasetId = () => model.get('dataset_id');
  const pageSize = () => Math.max(1, Math.min(1000, model.get('page_size') || 200));
  const st = {
    key: null,
    cache: new Map(),      // page index -> rows (Map order is the LRU order)
    inflight: new Map(),   // page index -> {ctrl, key}
    wanted: [],            // page indexes needed now, most urgent first
    seed: null,            // the kernel's page {key, offset, rows}
    pendingSeed: null,     // a page fetched here for a query about to be committed
    total: model.get('total_rows') || 0,
    columns: model.get('row_columns') || [],
    widths: [],
    top: Math.max(0, model.get('offset') || 0), // the first row in view (fractional)
    lastScroll: null,      // the scrollTop this module set last
    failed: null,
    pool: [],
    frame: null,
    pumpTimer: null,
    picker: false,
    stats: false,
    statCharts: [],
    destroyed: false,
    // no version and no error from a kernel: nobody has loaded the first state yet
    booting: !model.get('version') && !model.get('error'),
  };

  /* ---- layout ---- */
  const title = aisEl('span', { class: 'ais-title', 'data-testid': 'ais-explorer-title' });
  const version = aisEl('span', { class: 'ais-muted', 'data-testid': 'ais-explorer-version' });
  const description = aisEl('div', { class: 'ais-muted', 'data-testid': 'ais-explorer-description' });
  const filterInput = aisEl('input', {
    class: 'ais-x-filter', type: 'text', placeholder: 'filter, e.g. score >= 0.5 and label = "cat"', title: EXPLORER_FILTER_HELP,
    'data-testid': 'ais-explorer-filter', spellcheck: 'false',
    onkeydown: (e) => { if (e.key === 'Enter') applyFilter(filterInput.value); if (e.key === 'Escape') { filterInput.value = model.get('filter') || ''; showFilterError(null); } },
  });
  const applyBtn = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-explorer-filter-apply', onclick: () => applyFilter(filterInput.value) }, 'Filter');
  const clearBtn = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-explorer-filter-clear', onclick: () => { filterInput.value = ''; applyFilter(''); } }, 'Clear');
  const filterError = aisEl('div', { class: 'ais-x-inline-error', role: 'alert', 'data-testid': 'ais-explorer-filter-error' });
  const pickerBtn = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-explorer-columns-toggle', onclick: () => { st.picker = !st.picker; renderPicker(); } }, 'Columns');
  const statsBtn = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-explorer-stats-toggle', onclick: () => { st.stats = !st.stats; renderStats(); } }, 'Statistics');
  const gotoInput = aisEl('input', {
    class: 'ais-x-goto', type: 'number', min: '1', placeholder: 'go to row', title: 'Go to row (1-based); Enter', 'data-testid': 'ais-explorer-goto',
    onkeydown: (e) => { if (e.key === 'Enter' && gotoInput.value) { scrollToRow(parseInt(gotoInput.value, 10) - 1); scroller.focus(); } },
  });
  const picker = aisEl('div', { class: 'ais-x-picker', 'data-testid': 'ais-explorer-columns', style: { display: 'none' } });
  const pyErrors = aisEl('div');
  const gridErrors = aisEl('div', { 'data-testid': 'ais-explorer-grid-error' });
  const headRow = aisEl('div', { class: 'ais-x-headrow' });
  const head = aisEl('div', { class: 'ais-x-head', 'data-testid': 'ais-explorer-header' }, headRow);
  const spacer = aisEl('div', { class: 'ais-x-spacer' });
  const layer = aisEl('div', { class: 'ais-x-layer', 'data-testid': 'ais-explorer-rows' });
  spacer.appendChild(layer); // the spacer clips the layer: rows drawn past the end never grow the scroll range
  const scroller = aisEl('div', { class: 'ais-x-scroll', tabindex: '0', 'data-testid': 'ais-explorer-grid', 'data-state': 'loading' }, spacer);
  const status = aisEl('span', { 'data-testid': 'ais-explorer-status' });
  const loadingText = aisEl('span', { class: 'ais-muted', 'data-testid': 'ais-explorer-loading' });
  const stats = aisEl('div', { class: 'ais-x-stats', 'data-testid': 'ais-explorer-stats', style: { display: 'none' } });

  el.appendChild(aisEl('div', { class: 'ais-card' },
    aisEl('div', { class: 'ais-row' }, title, version),
    description,
    aisEl('div', { class: 'ais-row' }, filterInput, applyBtn, clearBtn, pickerBtn, statsBtn, gotoInput),
    filterError, picker, pyErrors, gridErrors, head, scroller,
    aisEl('div', { class: 'ais-row' }, status, loadingText),
    stats));

  /* ---- the query and its cache ---- */
  const query = () => ({
    version: model.get('version') || 'latest',
    sort: model.get('sort') || '',
    filter: model.get('filter') || '',
    columns: (model.get('columns') || []).map(explorerRef).join(','),
  });
  const keyOf = (q) => JSON.stringify([datasetId(), q.version, q.sort, q.filter, q.columns]);

  const rowsPath = () => `/datasets/${encodeURIComponent(datasetId())}/rows`;

  const cacheGet = (p) => {
    const rows = st.cache.get(p);
    if (rows) { st.cache.delete(p); st.cache.set(p, rows); }
    return rows;
  };
  const cachePut = (p, rows) => {
    st.cache.delete(p);
    st.cache.set(p, rows);
    while (st.cache.size > EXPLORER_CACHE_PAGES) st.cache.delete(st.cache.keys().next().value);
  };
  const rowAt = (i) => {
    const seed = st.seed;
    if (seed && seed.key === st.key && i >= seed.offset && i < seed.offset + seed.rows.length) return seed.rows[i - seed.offset];
    const rows = cacheGet(Math.floor(i / pageSize()));
    return rows ? rows[i % pageSize()] : undefined;
  };

  const abortAll = () => {
    for (const { ctrl } of st.inflight.values()) ctrl.abort();
    st.inflight.clear();
  };

  // A new query (sort, filter, columns or version): nothing cached is valid any more.
  const resetQuery = () => {
    const key = keyOf(query());
    if (key === st.key) return false;
    st.key = key;
    st.cache.clear();
    abortAll();
    st.failed = null;
    aisClear(gridErrors);
    if (st.pendingSeed && st.pendingSeed.key === key) {
      const data = st.pendingSeed.data;
      st.total = data.total_rows;
      setColumns(data.columns);
      cachePut(Math.floor(data.offset / pageSize()), data.rows);
    }
    st.pendingSeed = null;
    return true;
  };

  const fetchPage = (p) => {
    const key = st.key;
    const ctrl = new AbortController();
    const entry = { ctrl, key };
    st.inflight.set(p, entry);
    const q = query();
    aisApi(rowsPath(), { params: { ...q, offset: p * pageSize(), limit: pageSize() }, signal: ctrl.signal, timeoutMs: 60000 })
      .then((data) => {
        if (st.destroyed || st.key !== key) return;
        cachePut(p, data.rows);
        st.failed = null;
        aisClear(gridErrors);
        if (data.total_rows !== st.total) st.total = data.total_rows;
        setColumns(data.columns);
        schedule();
      })
      .catch((err) => {
        if (st.destroyed || st.key !== key || ctrl.signal.aborted) return;
        st.failed = err;
        aisClear(gridErrors);
        gridErrors.appendChild(aisErrorBox(err, () => { st.failed = null; aisClear(gridErrors); schedule(); }));
        schedule();
      })
      .finally(() => {
        if (st.inflight.get(p) === entry) st.inflight.delete(p);
        pump();
      });
  };

  // Starts the wanted pages, most urgent first; pages scrolled past are dropped before they
  // start, and requests for them still running are aborted. An aborted request still counts
  // against the limit until it has settled: the server may well be working on it still.
  const pump = () => {
    if (st.destroyed || st.failed) return;
    const wanted = new Set(st.wanted);
    for (const [p, entry] of st.inflight) {
      if (!wanted.has(p) && !entry.ctrl.signal.aborted) entry.ctrl.abort();
    }
    for (const p of st.wanted) {
      if (st.inflight.size >= EXPLORER_PARALLEL) break;
      if (st.cache.has(p) || st.inflight.has(p)) continue;
      fetchPage(p);
    }
    updateStatus();
  };
  const pumpSoon = () => {
    // while the scrollbar is dragged fast, wait for it to settle rather than fetch every page passed
    clearTimeout(st.pumpTimer);
    st.pumpTimer = setTimeout(pump, 40);
  };

  /* ---- geometry: row index <-> scrollTop ---- */
  const viewRows = () => Math.max(1, Math.floor((scroller.clientHeight || EXPLORER_VIEW_H) / EXPLORER_ROW_H));
  const maxTop = () => Math.max(0, st.total - viewRows());
  const virtualH = () => Math.min(st.total * EXPLORER_ROW_H, EXPLORER_MAX_PX);
  const scaled = () => st.total * EXPLORER_ROW_H > EXPLORER_MAX_PX;
  const maxScroll = () => Math.max(0, virtualH() - (scroller.clientHeight || EXPLORER_VIEW_H));
  const scrollOf = (top) => (scaled() ? (maxTop() ? (top / maxTop()) * maxScroll() : 0) : top * EXPLORER_ROW_H);
  const topOf = (scrollTop) => (scaled() ? (maxScroll() ? (scrollTop / maxScroll()) * maxTop() : 0) : scrollTop / EXPLORER_ROW_H);

  const setTop = (top) => {
    st.top = Math.max(0, Math.min(top, maxTop()));
    const want = scrollOf(st.top);
    if (Math.abs(scroller.scrollTop - want) >= 1) scroller.scrollTop = want;
    st.lastScroll = scroller.scrollTop;
    // drawn now, not on the next frame: the grid's data-state never lags an action it was given
    if (st.frame !== null) { cancelAnimationFrame(st.frame); st.frame = null; }
    draw();
  };
  const scrollToRow = (i) => { if (Number.isFinite(i)) setTop(i); };

  const onScroll = () => {
    head.scrollLeft = scroller.scrollLeft;
    // a scroll this module did not cause (scrollbar drag, wheel, keys): follow it
    if (st.lastScroll === null || Math.abs(scroller.scrollTop - st.lastScroll) >= 1) {
      st.top = Math.max(0, Math.min(topOf(scroller.scrollTop), maxTop()));
      st.lastScroll = scroller.scrollTop;
    }
    schedule();
  };
  // Scaled, a pixel of scrollbar is several rows: the wheel moves by rows instead, as unscaled.
  const onWheel = (e) => {
    if (!scaled() || e.ctrlKey || Math.abs(e.deltaY) < Math.abs(e.deltaX)) return;
    e.preventDefault();
    const rows = e.deltaMode === 1 ? e.deltaY : e.deltaMode === 2 ? e.deltaY * viewRows() : e.deltaY / EXPLORER_ROW_H;
    setTop(st.top + rows);
  };
  const onKey = (e) => {
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: viewRows(), PageUp: -viewRows() };
    if (e.key in moves) setTop(Math.round(st.top) + moves[e.key]);
    else if (e.key === 'Home') setTop(0);
    else if (e.key === 'End') setTop(maxTop());
    else return;
    e.preventDefault();
  };
  scroller.addEventListener('scroll', onScroll, { passive: true });
  scroller.addEventListener('wheel', onWheel, { passive: false });
  scroller.addEventListener('keydown', onKey);

  /* ---- drawing ---- */
  const setColumns = (columns) => {
    const same = columns.length === st.columns.length && columns.every((c, i) => c.name === st.columns[i].name && c.type === st.columns[i].type);
    if (same && st.pool.length) return;
    st.columns = columns;
    st.widths = columns.map(explorerWidth);
    aisClear(layer);
    st.pool = [];
    renderHeader();
  };

  const renderHeader = () => {
    aisClear(headRow);
    const sorted = explorerParseSort(model.get('sort'));
    const first = sorted[0];
    headRow.appendChild(aisEl('div', { class: 'ais-x-cell ais-x-num', style: { width: EXPLORER_NUM_W + 'px' } }, '#'));
    st.columns.forEach((col, i) => {
      const mark = first && first.name === col.name ? (first.desc ? ' ▼' : ' ▲') : '';
      headRow.appendChild(aisEl('div', {
        class: 'ais-x-cell ais-x-th', style: { width: st.widths[i] + 'px' }, title: `${col.name} (${col.type}): click to sort`,
        'data-testid': 'ais-explorer-th', 'data-column': col.name, 'aria-sort': mark ? (first.desc ? 'descending' : 'ascending') : 'none',
        onclick: () => cycleSort(col.name),
      }, col.name, aisEl('span', { class: 'ais-x-type' }, col.type), mark));
    });
    const width = EXPLORER_NUM_W + st.widths.reduce((a, b) => a + b, 0);
    headRow.style.width = width + 'px';
    spacer.style.width = width + 'px';
  };

  const makeRow = () => {
    const row = aisEl('div', { class: 'ais-x-row' });
    row.appendChild(aisEl('div', { class: 'ais-x-cell ais-x-num', style: { width: EXPLORER_NUM_W + 'px' } }));
    st.columns.forEach((col, i) => {
      row.appendChild(aisEl('div', { class: ['ais-x-cell', explorerNumeric(col.type) && 'ais-x-right'], style: { width: st.widths[i] + 'px' } }));
    });
    return row;
  };

  const draw = () => {
    st.frame = null;
    if (st.destroyed) return;
    // a short table gets a short grid (room for a horizontal scrollbar below its rows)
    const height = Math.min(EXPLORER_VIEW_H, Math.max(3, st.total) * EXPLORER_ROW_H + 18) + 'px';
    if (scroller.style.height !== height) scroller.style.height = height;
    spacer.style.height = virtualH() + 'px';
    const n = viewRows() + 1;
    const first = Math.floor(st.top);
    const count = Math.max(0, Math.min(n, st.total - first));
    while (st.pool.length < count) { const r = makeRow(); st.pool.push(r); layer.appendChild(r); }
    while (st.pool.length > count) layer.removeChild(st.pool.pop());
    // pinned to the view: the layer sits where the view is, shifted by the fractional row
    const y = scroller.scrollTop - (st.top - first) * EXPLORER_ROW_H;
    layer.style.transform = `translateY(${Math.max(0, y)}px)`;
    let missing = 0;
    for (let k = 0; k < count; k += 1) {
      const i = first + k;
      const row = st.pool[k];
      const values = rowAt(i);
      row.dataset.rowIndex = String(i);
      row.dataset.loaded = values ? 'true' : 'false';
      const cells = row.children;
      cells[0].textContent = aisFormat.int(i + 1);
      for (let c = 0; c < st.columns.length; c += 1) {
        const cell = cells[c + 1];
        if (!values) { cell.textContent = '…'; cell.className = cell.className.replace(/ ais-x-null| ais-x-pending/g, '') + ' ais-x-pending'; cell.removeAttribute('title'); continue; }
        const value = values[c];
        const text = explorerCellText(value);
        cell.textContent = text;
        cell.className = cell.className.replace(/ ais-x-null| ais-x-pending/g, '') + (value === null ? ' ais-x-null' : '');
        if (text.length > 20) cell.title = text.slice(0, 2000); else cell.removeAttribute('title');
      }
      if (!values) missing += 1;
    }
    // which pages: the view's first, then the rest of the view, then the overscan around it
    const size = pageSize();
    const wanted = [];
    const add = (row) => { if (row >= 0 && row < st.total) { const p = Math.floor(row / size); if (!wanted.includes(p)) wanted.push(p); } };
    for (let i = first; i < first + count; i += 1) add(i);
    add(first - EXPLORER_OVERSCAN); add(first + count + EXPLORER_OVERSCAN);
    st.wanted = wanted.filter((p) => !st.cache.has(p) && !(st.seed && st.seed.key === st.key && p * size >= st.seed.offset && Math.min((p + 1) * size, st.total) <= st.seed.offset + st.seed.rows.length));
    scroller.dataset.state = st.booting ? 'loading' : st.failed ? 'error' : missing ? 'loading' : 'ready';
    scroller.dataset.first = String(first);
    scroller.dataset.total = String(st.total);
    updateStatus(first, count);
    if (st.wanted.length) pumpSoon();
  };

  const updateStatus = (first = Math.floor(st.top), count = Math.min(viewRows(), st.total - Math.floor(st.top))) => {
    if (st.booting) { status.textContent = ''; loadingText.textContent = 'loading…'; return; }
    const shown = Math.max(0, Math.min(count, viewRows()));
    let text = explorerRange(first + 1, first + shown, st.total);
    if (model.get('filter')) text += ` (filtered from ${aisFormat.int(model.get('row_count'))})`;
    if (status.textContent !== text) status.textContent = text;
    loadingText.textContent = st.inflight.size || st.wanted.length ? 'loading…' : '';
  };

  const schedule = () => {
    if (st.frame === null && !st.destroyed) st.frame = requestAnimationFrame(draw);
  };

  /* ---- controls: every change goes through the model, as the Python methods' do ---- */
  const commit = (changes) => {
    for (const [name, value] of Object.entries(changes)) model.set(name, value);
    model.save_changes();
  };

  const cycleSort = (name) => {
    const first = explorerParseSort(model.get('sort'))[0];
    let sort = explorerRef(name);
    if (first && first.name === name) sort = first.desc ? '' : '-' + explorerRef(name);
    st.top = 0;
    commit({ sort });
  };

  // A filter is tried first: the server's 422 shows here and the grid keeps its rows.
  const applyFilter = async (text) => {
    const filter = (text || '').trim();
    if (filter === (model.get('filter') || '')) { showFilterError(null); return; }
    const q = { ...query(), filter };
    applyBtn.disabled = true;
    try {
      const data = await aisApi(rowsPath(), { params: { ...q, offset: 0, limit: pageSize() }, timeoutMs: 60000 });
      showFilterError(null);
      st.pendingSeed = { key: keyOf(q), data };
      st.top = 0;
      commit({ filter });
    } catch (err) {
      showFilterError(err);
    } finally {
      applyBtn.disabled = false;
    }
  };
  const showFilterError = (err) => {
    aisClear(filterError);
    if (!err) return;
    filterError.appendChild(document.createTextNode(err.status === 422 || err.status === 400 ? err.message : aisFriendly(err)));
  };

  const renderPicker = () => {
    picker.style.display = st.picker ? 'flex' : 'none';
    aisClear(picker);
    if (!st.picker) return;
    const schema = model.get('schema') || [];
    const chosen = model.get('columns') || [];
    const shown = new Set(chosen.length ? chosen : schema.map((c) => c.name));
    const boxes = [];
    const update = () => {
      const names = schema.filter((c, i) => boxes[i].checked).map((c) => c.name);
      if (!names.length) { boxes.forEach((b) => { b.checked = shown.has(b.dataset.column); }); return; }
      commit({ columns: names.length === schema.length ? [] : names });
    };
    schema.forEach((col) => {
      const box = aisEl('input', { type: 'checkbox', checked: shown.has(col.name), 'data-column': col.name, onchange: update });
      boxes.push(box);
      picker.appendChild(aisEl('label', { title: col.type }, box, ' ', col.name));
    });
    picker.appendChild(aisEl('button', { class: 'ais-btn', type: 'button', onclick: () => commit({ columns: [] }) }, 'All'));
  };

  /* ---- statistics ---- */
  const addClause = (column, value) => {
    const clause = `${explorerRef(column)} ${value === null ? 'is null' : '= ' + JSON.stringify(value)}`;
    const current = (model.get('filter') || '').trim();
    filterInput.value = current ? `${current} and ${clause}` : clause;
    applyFilter(filterInput.value);
  };

  const loadProfile = async (button) => {
    button.disabled = true;
    try {
      const profile = await aisApi(`/datasets/${encodeURIComponent(datasetId())}/profile`, { params: { version: model.get('version') || 'latest' }, timeoutMs: 300000 });
      commit({ profile });
    } catch (err) {
      aisClear(stats);
      stats.appendChild(aisErrorBox(err, () => renderStats()));
    }
  };

  const renderStats = () => {
    for (const chart of st.statCharts) chart.destroy();
    st.statCharts = [];
    stats.style.display = st.stats ? 'grid' : 'none';
    aisClear(stats);
    if (!st.stats) return;
    const profile = model.get('profile') || {};
    if (!profile.columns) {
      const button = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-explorer-profile-load' }, 'Compute statistics');
      button.onclick = () => loadProfile(button);
      stats.appendChild(button);
      return;
    }
    const shown = new Set(st.columns.map((c) => c.name));
    for (const col of profile.columns) {
      if (shown.size && !shown.has(col.name)) continue;
      const kv = aisEl('div', { class: 'ais-x-kv' });
      const put = (k, v) => { if (v !== null && v !== undefined) kv.append(aisEl('span', {}, k), aisEl('span', {}, v)); };
      const num = (v) => (typeof v === 'number' ? aisFormat.number(v) : explorerCellText(v));
      put('values', aisFormat.int(col.count));
      put('nulls', `${aisFormat.int(col.nulls)}${profile.row_count ? ` (${aisFormat.percent(col.nulls / profile.row_count, 1)})` : ''}`);
      put('distinct', `≈ ${aisFormat.int(col.distinct)}`);
      if (col.min !== null && col.min !== undefined) put('range', `${num(col.min)} … ${num(col.max)}`);
      if (col.mean !== null && col.mean !== undefined) put('mean ± std', `${aisFormat.number(col.mean)} ± ${aisFormat.number(col.std)}`);
      if (col.quantiles) put('p5 / p50 / p95', ['p5', 'p50', 'p95'].map((q) => num(col.quantiles[q])).join(' / '));
      const card = aisEl('div', { class: 'ais-card ais-x-stat', 'data-testid': 'ais-explorer-stat', 'data-column': col.name },
        aisEl('div', { class: 'ais-row' }, aisEl('span', { class: 'ais-x-statname' }, col.name), aisEl('span', { class: 'ais-muted' }, `${col.type} · ${col.kind}`)), kv);
      if (col.histogram && col.histogram.length) {
        const canvas = aisEl('canvas', { 'data-testid': 'ais-explorer-histogram' });
        card.appendChild(aisEl('div', { class: 'ais-chart' }, canvas));
        st.statCharts.push(aisBars(canvas, col.histogram.map((b) => ({ lo: b.lower, hi: b.upper, count: b.count }))));
      } else if (col.top_values && col.top_values.length) {
        const canvas = aisEl('canvas', { 'data-testid': 'ais-explorer-histogram' });
        card.appendChild(aisEl('div', { class: 'ais-chart' }, canvas));
        st.statCharts.push(aisBars(canvas, col.top_values.map((t) => ({ label: explorerCellText(t.value), count: t.count }))));
        card.appendChild(aisEl('div', { class: 'ais-x-kv' }, col.top_values.slice(0, 5).flatMap((t) => [
          aisEl('span', { class: 'ais-x-top', title: 'Filter on this value', onclick: () => addClause(col.name, t.value) }, explorerCellText(t.value)),
          aisEl('span', {}, aisFormat.int(t.count)),
        ])));
      }
      stats.appendChild(card);
    }
    if (profile.columns_total > profile.columns.length) {
      stats.appendChild(aisEl('div', { class: 'ais-muted' }, `${profile.columns.length} of ${profile.columns_total} columns profiled`));
    }
  };

  /* ---- the first state without a kernel: the keys DatasetExplorer._load sets ---- */
  const firstLoad = async () => {
    st.booting = true;
    st.failed = null;
    aisClear(gridErrors);
    scroller.dataset.state = 'loading';
    updateStatus();
    const q = query();
    try {
      const [record, page] = await Promise.all([
        aisApi(`/datasets/${encodeURIComponent(datasetId())}`),
        aisApi(rowsPath(), { params: { ...q, offset: Math.max(0, model.get('offset') || 0), limit: pageSize() }, timeoutMs: 60000 }),
      ]);
      // as in the kernel: an unfiltered page over every column gives the schema and the row count
      const everything = q.filter || q.columns
        ? await aisApi(rowsPath(), { params: { version: page.version, offset: 0, limit: 1 }, timeoutMs: 60000 })
        : page;
      if (st.destroyed) return;
      if (keyOf(query()) !== keyOf(q)) { firstLoad(); return; } // the query changed meanwhile
      st.booting = false;
      const state = {
        dataset_name: String(record.name || ''), description: String(record.description || ''),
        version: everything.version, schema: everything.columns, row_count: everything.total_rows,
        row_columns: page.columns, total_rows: page.total_rows, offset: page.offset, rows: page.rows,
      };
      for (const [name, value] of Object.entries(state)) model.set(name, value);
      model.save_changes();
      // statistics are extra: they follow the rows, and a failure leaves the Statistics button
      const v = everything.version;
      aisApi(`/datasets/${encodeURIComponent(datasetId())}/profile`, { params: { version: v }, timeoutMs: 300000 }).then((profile) => {
        if (!st.destroyed && model.get('version') === v && !(model.get('profile') || {}).columns) commit({ profile });
      }, () => {});
    } catch (err) {
      if (st.destroyed) return;
      st.booting = false;
      st.failed = err; // the grid shows its error state until Retry loads
      aisClear(gridErrors);
      gridErrors.appendChild(aisErrorBox(err, () => firstLoad()));
      schedule();
    }
  };

  /* ---- following the model (the kernel's methods and this module's own commits) ---- */
  const fromModel = (changed) => {
    title.textContent = model.get('dataset_name') || model.get('dataset_id') || '';
    description.textContent = model.get('description') || '';
    const v = model.get('version');
    version.textContent = v ? `version ${v} · ${aisFormat.int(model.get('row_count'))} rows · ${(model.get('schema') || []).length} columns` : '';
    if (document.activeElement !== filterInput || changed.has('filter')) filterInput.value = model.get('filter') || '';
    const fresh = resetQuery();
    if (changed.has('rows') || changed.has('offset') || changed.has('row_columns') || changed.has('total_rows') || st.seed === null) {
      // the kernel loaded a page (a refresh or one of its methods): it belongs to the query in the same message
      st.seed = { key: st.key, offset: model.get('offset') || 0, rows: model.get('rows') || [] };
      st.total = model.get('total_rows') || 0;
      setColumns(model.get('row_columns') || []);
      if (changed.has('offset')) st.top = model.get('offset') || 0;
    }
    if (fresh || changed.has('sort')) renderHeader();
    if (changed.has('schema') || changed.has('columns')) renderPicker();
    if (changed.has('profile') || changed.has('columns') || fresh) renderStats();
    setTop(st.top);
  };

  // the kernel's changes come as one message; their change events are gathered into one update
  let changed = new Set();
  let queued = false;
  const names = ['dataset_id', 'dataset_name', 'description', 'version', 'schema', 'columns', 'sort', 'filter', 'row_count', 'total_rows', 'offset', 'rows', 'row_columns', 'profile', 'page_size'];
  const handlers = names.map((name) => {
    const fn = () => {
      changed.add(name);
      if (queued) return;
      queued = true;
      queueMicrotask(() => { queued = false; const c = changed; changed = new Set(); if (!st.destroyed) fromModel(c); });
    };
    model.on(`change:${name}`, fn);
    return [name, fn];
  });
  const unbindError = aisBindError(model, pyErrors, () => model.send({ op: 'refresh' }));

  fromModel(new Set(names));
  requestAnimationFrame(() => setTop(st.top)); // the scroller has its size once attached
  if (st.booting) firstLoad();

  return () => {
    st.destroyed = true;
    abortAll();
    clearTimeout(st.pumpTimer);
    if (st.frame !== null) cancelAnimationFrame(st.frame);
    for (const chart of st.statCharts) chart.destroy();
    scroller.removeEventListener('scroll', onScroll);
    scroller.removeEventListener('wheel', onWheel);
    scroller.removeEventListener('keydown', onKey);
    for (const [name, fn] of handlers) model.off(`change:${name}`, fn);
    unbindError();
  };
}

export default { render: aisMount(renderExplorer) };
