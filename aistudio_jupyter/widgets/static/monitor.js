// TrainingMonitor: the kernel hands over the first state (job, downsampled history, log tail and
// the topic's last seq); from then on this module follows job:<id> on the events WebSocket and
// calls the REST API itself, so it keeps moving while the kernel is busy training.

const AIS_TERMINAL = ['succeeded', 'failed', 'canceled', 'lost'];
const AIS_LOG_LINES = 200;
const AIS_HIDDEN_KEYS = new Set(['epoch', 'progress']);

// Keeps each bucket's first, lowest, highest and last point (as the server does), so a long
// live series stays bounded without hiding its spikes.
function aisDecimate(points, maxPoints) {
  if (points.length <= maxPoints) return points;
  const buckets = Math.max(1, Math.floor(maxPoints / 4));
  const width = Math.ceil(points.length / buckets);
  const out = [];
  for (let b = 0; b < points.length; b += width) {
    const chunk = points.slice(b, b + width);
    let lo = 0, hi = 0;
    chunk.forEach((p, i) => { if (p.value < chunk[lo].value) lo = i; if (p.value > chunk[hi].value) hi = i; });
    for (const i of [...new Set([0, lo, hi, chunk.length - 1])].sort((x, y) => x - y)) out.push(chunk[i]);
  }
  return out;
}

// step -> (fractional) epoch, from the `epoch` metric logged at the end of each epoch.
function aisEpochOf(epochPoints) {
  const marks = [[0, 0], ...(epochPoints || []).map((p) => [p.step, p.value])].sort((a, b) => a[0] - b[0]);
  if (marks.length < 2) return null;
  return (step) => {
    for (let i = 1; i < marks.length; i += 1) {
      const [s1, e1] = marks[i];
      const [s0, e0] = marks[i - 1];
      if (step <= s1) return s1 === s0 ? e1 : e0 + ((step - s0) / (s1 - s0)) * (e1 - e0);
    }
    const [s1, e1] = marks[marks.length - 1];
    const [s0, e0] = marks[marks.length - 2];
    return s1 === s0 ? e1 : e1 + ((step - s1) / (s1 - s0)) * (e1 - e0);
  };
}

function aisMonitorGroup(key) {
  if (/^(gpu|cpu|mem|system)/i.test(key) || key === 'samples_per_s') return 'system';
  const slash = key.indexOf('/');
  return slash > 0 ? key.slice(0, slash) : 'metrics';
}

function renderMonitor({ model, el }) {
  const jobId = model.get('job_id');
  const topic = 'job:' + jobId;
  const st = {
    job: model.get('job') || {},
    series: {},
    seen: {},
    logs: [],
    logEnd: {},
    sub: null,
    charts: new Map(), // key -> {wrap, canvas, chart}
    groups: new Map(), // group -> grid element
    dirty: new Set(),
    drawTimer: null,
  };

  /* ---- layout ---- */
  const title = aisEl('span', { class: 'ais-title' });
  const badgeSlot = aisEl('span');
  const live = aisEl('span', { class: 'ais-muted', 'data-testid': 'ais-monitor-live' });
  const cancelBtn = aisEl('button', { class: 'ais-btn ais-danger', type: 'button', 'data-testid': 'ais-monitor-cancel', onclick: () => cancel() }, 'Cancel');
  const refreshBtn = aisEl('button', { class: 'ais-btn', type: 'button', title: 'Reload the whole history', onclick: () => reload() }, 'Refresh');
  const reason = aisEl('div', { class: 'ais-muted', 'data-testid': 'ais-monitor-reason' });
  const pyErrors = aisEl('div');
  const jsErrors = aisEl('div');
  const bar = aisEl('div');
  const progress = aisEl('div', { class: 'ais-progress', 'data-testid': 'ais-monitor-progress' }, bar);
  const eta = aisEl('span', { class: 'ais-muted', 'data-testid': 'ais-monitor-eta' });
  const gpu = aisEl('div', { class: 'ais-row ais-muted', 'data-testid': 'ais-monitor-gpu' });
  const xSelect = aisEl('select', { 'data-testid': 'ais-monitor-x', onchange: () => setOption('x_key', xSelect.value) },
    ['step', 'epoch', 'time'].map((k) => aisEl('option', { value: k }, k)));
  const smoothing = aisEl('input', { type: 'range', min: '0', max: '0.99', step: '0.01', 'data-testid': 'ais-monitor-smoothing',
    oninput: () => setOption('smoothing', parseFloat(smoothing.value)) });
  const smoothingText = aisEl('span', { class: 'ais-muted' });
  const logY = aisEl('input', { type: 'checkbox', 'data-testid': 'ais-monitor-logy', onchange: () => setOption('log_y', logY.checked) });
  const charts = aisEl('div', { 'data-testid': 'ais-monitor-charts' });
  const empty = aisEl('div', { class: 'ais-muted' }, 'No metrics logged yet.');
  const logBox = aisEl('pre', { class: 'ais-log', 'data-testid': 'ais-monitor-log' });

  el.appendChild(aisEl('div', { class: 'ais-card ais-monitor', 'data-testid': 'ais-monitor', 'data-job-id': jobId },
    aisEl('div', { class: 'ais-row' }, title, badgeSlot, aisEl('span', { class: 'ais-grow' }), live, refreshBtn, cancelBtn),
    reason, pyErrors, jsErrors,
    aisEl('div', { class: 'ais-row' }, progress, eta),
    gpu,
    aisEl('div', { class: 'ais-row ais-muted' },
      aisEl('label', {}, 'x ', xSelect),
      aisEl('label', {}, 'smoothing ', smoothing, smoothingText),
      aisEl('label', {}, logY, ' log scale')),
    empty, charts,
    aisEl('details', { open: true }, aisEl('summary', { class: 'ais-muted' }, 'Log'), logBox)));

  /* ---- state from the kernel (or from a reload) ---- */
  const setSeries = (series) => {
    st.series = {};
    st.seen = {};
    for (const [key, points] of Object.entries(series || {})) {
      st.series[key] = points.slice();
      st.seen[key] = new Set(points.map((p) => p.step + '|' + p.wall_time));
    }
    st.dirty = new Set(Object.keys(st.series));
  };
  const setLogs = (text, offsets) => {
    st.logs = [];
    for (const stream of ['stdout', 'stderr']) {
      for (const line of splitLines((text || {})[stream] || '')) st.logs.push({ stream, line });
    }
    st.logs = st.logs.slice(-AIS_LOG_LINES);
    st.logEnd = { ...(offsets || {}) };
  };
  const splitLines = (text) => {
    if (!text) return [];
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines;
  };

  /* ---- rendering ---- */
  const renderStatus = () => {
    const job = st.job || {};
    title.textContent = job.name ? `${job.name} (${jobId})` : jobId;
    aisClear(badgeSlot).appendChild(aisBadge(job.state, { 'data-testid': 'ais-monitor-status', 'data-state': job.state || '' }));
    const done = AIS_TERMINAL.includes(job.state);
    cancelBtn.disabled = done || !job.state || Boolean(job.cancel_requested_at);
    cancelBtn.textContent = job.cancel_requested_at && !done ? 'Canceling…' : 'Cancel';
    reason.textContent = done && job.exit_reason ? job.exit_reason : '';
    renderProgress();
  };

  const last = (key) => {
    const s = st.series[key];
    return s && s.length ? s[s.length - 1] : null;
  };

  const renderProgress = () => {
    const job = st.job || {};
    let p = Number.isFinite(job.progress) ? job.progress : (last('progress') || {}).value;
    if (job.state === 'succeeded') p = 1;
    const has = Number.isFinite(p);
    bar.style.width = has ? `${Math.max(0, Math.min(1, p)) * 100}%` : '0%';
    progress.dataset.progress = has ? String(p) : '';
    const parts = [];
    if (has) parts.push(aisFormat.percent(p, 1));
    const started = job.started_at ? Date.parse(job.started_at) : NaN;
    const ended = job.finished_at ? Date.parse(job.finished_at) : NaN;
    if (Number.isFinite(started)) {
      const elapsed = ((Number.isFinite(ended) ? ended : Date.now()) - started) / 1000;
      parts.push(`elapsed ${aisFormat.duration(elapsed)}`);
      if (job.state === 'running' && has && p > 0 && p < 1) parts.push(`ETA ${aisFormat.duration((elapsed * (1 - p)) / p)}`);
    }
    const speed = st.series.samples_per_s;
    if (speed && speed.length) {
      const recent = speed.slice(-10).map((q) => q.value);
      parts.push(`${aisFormat.compact(recent.reduce((a, b) => a + b, 0) / recent.length)} samples/s`);
    }
    eta.textContent = parts.join(' · ');
    renderGpu();
  };

  const renderGpu = () => {
    aisClear(gpu);
    const job = st.job || {};
    const items = [];
    const gpus = (job.resources || {}).gpus;
    if (gpus) items.push(`GPUs ${gpus}` + ((job.gpu_ids || []).length ? ` [${job.gpu_ids.join(', ')}]` : ''));
    for (const key of Object.keys(st.series).sort()) {
      if (!/^gpu/i.test(key)) continue;
      const point = last(key);
      if (!point) continue;
      let text;
      if (/mem.*mb$/i.test(key)) text = aisFormat.bytes(point.value * 2 ** 20);
      else if (/util/i.test(key)) text = point.value <= 1 ? aisFormat.percent(point.value) : `${aisFormat.number(point.value, 3)}%`;
      else text = aisFormat.number(point.value);
      items.push(`${key} ${text}`);
    }
    gpu.style.display = items.length ? '' : 'none';
    for (const item of items) gpu.appendChild(aisEl('span', {}, item));
  };

  const chartFor = (key) => {
    let entry = st.charts.get(key);
    if (entry) return entry;
    const groupName = aisMonitorGroup(key);
    let grid = st.groups.get(groupName);
    if (!grid) {
      grid = aisEl('div', { class: 'ais-charts' });
      st.groups.set(groupName, grid);
      const sections = [...st.groups.keys()].sort((a, b) => (a === 'system') - (b === 'system') || a.localeCompare(b));
      aisClear(charts);
      for (const name of sections) charts.appendChild(aisEl('div', {}, aisEl('div', { class: 'ais-muted' }, name), st.groups.get(name)));
    }
    const canvas = aisEl('canvas', { 'data-testid': 'ais-monitor-chart', 'data-key': key, 'data-points': '0' });
    const wrap = aisEl('div', { class: 'ais-chart', 'data-key': key }, aisEl('div', { class: 'ais-muted' }, key), canvas);
    const siblings = [...grid.children].filter((c) => c.dataset.key > key);
    if (siblings.length) grid.insertBefore(wrap, siblings[0]); else grid.appendChild(wrap);
    entry = { wrap, canvas, chart: aisLineChart(canvas, [], options()) };
    st.charts.set(key, entry);
    return entry;
  };

  const options = () => ({ xKey: model.get('x_key') || 'step', smoothing: model.get('smoothing') || 0, logY: Boolean(model.get('log_y')) });

  const draw = (all = false) => {
    const keys = all ? Object.keys(st.series) : [...st.dirty];
    st.dirty.clear();
    const opts = options();
    const epochOf = aisEpochOf(st.series.epoch);
    xSelect.querySelector('option[value="epoch"]').disabled = !epochOf;
    if (opts.xKey === 'epoch' && !epochOf) opts.xKey = 'step';
    for (const key of keys) {
      if (AIS_HIDDEN_KEYS.has(key) || !st.series[key]) continue;
      let points = st.series[key];
      if (opts.xKey === 'epoch') points = points.map((p) => ({ ...p, epoch: epochOf(p.step) }));
      chartFor(key).chart.update([{ name: key, points }], opts);
    }
    if (all) for (const [key, entry] of st.charts) if (!st.series[key]) { entry.chart.destroy(); entry.wrap.remove(); st.charts.delete(key); }
    empty.style.display = st.charts.size ? 'none' : '';
    renderProgress();
  };

  const scheduleDraw = () => {
    if (st.drawTimer) return;
    st.drawTimer = setTimeout(() => { st.drawTimer = null; draw(); }, 150);
  };

  const renderLogs = () => {
    aisClear(logBox);
    for (const { stream, line } of st.logs) {
      logBox.appendChild(aisEl('span', { class: stream === 'stderr' ? 'ais-stderr' : null, style: stream === 'stderr' ? { color: 'var(--jp-error-color1, #c62828)' } : null }, line + '\n'));
    }
    logBox.scrollTop = logBox.scrollHeight;
  };

  const renderControls = () => {
    const o = options();
    xSelect.value = o.xKey;
    smoothing.value = String(o.smoothing);
    smoothingText.textContent = ' ' + o.smoothing.toFixed(2);
    logY.checked = o.logY;
  };

  const setOption = (name, value) => {
    model.set(name, value);
    model.save_changes(); // the kernel may be busy: the chart does not wait for it
    renderControls();
    draw(true);
  };

  /* ---- live events ---- */
  const addPoint = (key, p) => {
    const id = p.step + '|' + p.wall_time;
    const seen = st.seen[key] || (st.seen[key] = new Set());
    if (seen.has(id)) return; // already in the history the kernel loaded
    seen.add(id);
    const points = st.series[key] || (st.series[key] = []);
    const point = { step: p.step, value: p.value, wall_time: p.wall_time };
    if (points.length && points[points.length - 1].step > p.step) {
      let i = points.length;
      while (i > 0 && points[i - 1].step > p.step) i -= 1;
      points.splice(i, 0, point);
    } else points.push(point);
    const max = 2 * (model.get('max_points') || 1000);
    if (points.length > max) {
      st.series[key] = aisDecimate(points, max / 2);
      st.seen[key] = new Set(st.series[key].map((q) => q.step + '|' + q.wall_time));
    }
    st.dirty.add(key);
  };

  const addLog = (data) => {
    let text = String(data.text || '');
    const stream = data.stream === 'stderr' ? 'stderr' : 'stdout';
    if (Number.isInteger(data.end) && Number.isInteger(st.logEnd[stream])) {
      const have = st.logEnd[stream];
      if (data.end <= have) return; // part of the tail already shown
      const bytes = new TextEncoder().encode(text);
      const start = data.end - bytes.length;
      if (start < have) text = new TextDecoder().decode(bytes.slice(have - start));
    }
    if (Number.isInteger(data.end)) st.logEnd[stream] = data.end;
    for (const line of splitLines(text)) st.logs.push({ stream, line });
    if (st.logs.length > AIS_LOG_LINES) st.logs = st.logs.slice(-AIS_LOG_LINES);
    renderLogs();
  };

  const onEvent = (m) => {
    const data = m.data || {};
    if (m.type === 'status') {
      st.job = { ...st.job, ...data };
      renderStatus();
    } else if (m.type === 'progress') {
      st.job = { ...st.job, progress: data.progress };
      renderProgress();
    } else if (m.type === 'metrics') {
      for (const p of data.points || []) addPoint(p.key, p);
      scheduleDraw();
    } else if (m.type === 'log') {
      addLog(data);
    }
  };

  const subscribe = () => {
    if (st.sub) st.sub.close();
    const since = (model.get('since') || {})[topic];
    const known = Number.isInteger(since);
    let first = true;
    st.sub = aisEvents().subscribe(topic, known ? since : null, onEvent, {
      onAck: (ack) => {
        // without the kernel's seq (or past pruned history) load after the head: nothing missed
        if ((first && !known) || ack.pruned_through !== undefined) reload();
        first = false;
      },
      onError: (err) => showError(err, () => subscribe()),
    });
  };

  /* ---- REST, straight from the browser ---- */
  const showError = (err, retry) => {
    aisClear(jsErrors);
    if (err) jsErrors.appendChild(aisErrorBox(err, async () => { aisClear(jsErrors); await retry(); }));
  };

  const logTail = async (stream) => {
    const path = `/jobs/${encodeURIComponent(jobId)}/logs`;
    const head = await aisApi(path, { params: { stream, limit: 1 } });
    const tailBytes = 16384;
    const page = await aisApi(path, { params: { stream, offset: Math.max(0, head.size - tailBytes), limit: tailBytes } });
    let text = page.text;
    if (page.offset > 0) text = text.includes('\n') ? text.slice(text.indexOf('\n') + 1) : '';
    return [text, page.next_offset];
  };

  const reload = async () => {
    refreshBtn.disabled = true;
    try {
      const id = encodeURIComponent(jobId);
      const [job, metrics] = await Promise.all([
        aisApi(`/jobs/${id}`),
        aisApi(`/jobs/${id}/metrics`, { params: { max_points: model.get('max_points') || 1000 } }),
      ]);
      const text = {};
      const offsets = {};
      for (const stream of ['stdout', 'stderr']) {
        try { [text[stream], offsets[stream]] = await logTail(stream); } catch (e) { /* curves without the log */ }
      }
      st.job = job;
      setSeries(metrics.series);
      setLogs(text, offsets);
      showError(null);
      renderStatus();
      renderLogs();
      draw(true);
    } catch (err) {
      showError(err, reload);
    } finally {
      refreshBtn.disabled = false;
    }
  };

  const cancel = async () => {
    cancelBtn.disabled = true;
    cancelBtn.textContent = 'Canceling…';
    try {
      const job = await aisApi(`/jobs/${encodeURIComponent(jobId)}/cancel`, { method: 'POST' });
      st.job = { ...st.job, ...job };
      showError(null);
    } catch (err) {
      if (err.status === 409) await reload(); // it had ended meanwhile
      else showError(err, cancel);
    }
    renderStatus();
  };

  /* ---- wiring ---- */
  const fromKernel = () => {
    st.job = model.get('job') || {};
    setSeries(model.get('series'));
    setLogs(model.get('log_text'), model.get('log_offsets'));
    renderStatus();
    renderLogs();
    draw(true);
  };
  // a kernel-side refresh() bumps `revision`: its state and seqs replace the browser's
  const onRevision = () => { fromKernel(); subscribe(); };
  const onJob = () => { st.job = { ...st.job, ...(model.get('job') || {}) }; renderStatus(); };
  const onOptions = () => { renderControls(); draw(true); };
  const optionEvents = ['change:x_key', 'change:smoothing', 'change:log_y'];

  const unbindError = aisBindError(model, pyErrors, reload);
  const unbindLive = aisEvents().onState((state) => {
    live.dataset.state = state;
    live.textContent = state === 'open' ? '● live' : state === 'closed' ? '' : `○ ${state}…`;
  });
  model.on('change:revision', onRevision);
  model.on('change:job', onJob);
  for (const name of optionEvents) model.on(name, onOptions);
  const ticker = setInterval(() => { if ((st.job || {}).state === 'running') renderProgress(); }, 1000);

  renderControls();
  fromKernel();
  subscribe();

  return () => {
    clearInterval(ticker);
    clearTimeout(st.drawTimer);
    if (st.sub) st.sub.close();
    unbindError();
    unbindLive();
    model.off('change:revision', onRevision);
    model.off('change:job', onJob);
    for (const name of optionEvents) model.off(name, onOptions);
    for (const { chart } of st.charts.values()) chart.destroy();
  };
}

export default { render: aisMount(renderMonitor) };
