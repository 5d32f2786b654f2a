// ValidationReportWidget: findings grouped by severity, pass/fail per rule, counts and example
// rows. Re-run is done here, by the browser: POST /datasets/{id}/validate with the same rules,
// then follow job:<id> (progress, status) on the events WebSocket and read the new report when
// the job has run; a slow poll covers a socket that cannot connect. Every string from the data
// or the report is a text node, never markup.

const VALIDATION_FINISHED = ['passed', 'failed', 'error'];
const VALIDATION_JOB_DONE = ['succeeded', 'failed', 'canceled', 'lost'];
const VALIDATION_SEVERITIES = [['error', 'Errors'], ['warning', 'Warnings'], ['info', 'Info']];
const VALIDATION_POLL_MS = 4000;

const VALIDATION_CSS = `
.ais-validation .ais-v-group { margin-top: 8px; }
.ais-validation .ais-v-group > summary { cursor: pointer; font-weight: 600; }
.ais-validation .ais-v-finding { border-left: 3px solid var(--jp-border-color2, #ccc); padding: 2px 8px; margin: 4px 0; }
.ais-validation .ais-v-finding[data-passed="false"][data-severity="error"] { border-color: #c62828; }
.ais-validation .ais-v-finding[data-passed="false"][data-severity="warning"] { border-color: #f9a825; }
.ais-validation .ais-v-finding[data-passed="true"] { border-color: #2e7d32; }
.ais-validation .ais-v-mark { display: inline-block; width: 1.2em; }
.ais-validation .ais-v-pass { color: #2e7d32; }
.ais-validation .ais-v-fail { color: #c62828; }
.ais-validation .ais-v-warn { color: #b26a00; }
.ais-validation .ais-v-examples { overflow-x: auto; margin: 2px 0 4px 1.2em; }
.ais-validation .ais-v-examples table { width: auto; font-family: var(--jp-code-font-family, monospace); font-size: 12px; }
.ais-validation .ais-v-verdict { font-weight: 700; }
`;

function validationStyle() {
  if (document.getElementById('ais-validation-style')) return;
  document.head.appendChild(aisEl('style', { id: 'ais-validation-style' }, VALIDATION_CSS));
}

function validationText(value) {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function validationRuleLabel(rule) {
  const parts = [rule.check];
  if (rule.column) parts.push(`on ${rule.column}`);
  for (const key of ['expected', 'min', 'max', 'value', 'pattern', 'min_fraction', 'max_ratio']) {
    if (rule[key] !== undefined && rule[key] !== null) parts.push(`${key}=${validationText(rule[key])}`);
  }
  if (Array.isArray(rule.values)) parts.push(`values=${validationText(rule.values.slice(0, 10))}${rule.values.length > 10 ? '…' : ''}`);
  return parts.join(' ');
}

function validationExamples(examples) {
  const keys = [];
  for (const e of examples) for (const k of Object.keys(e.values || {})) if (!keys.includes(k)) keys.push(k);
  const hasRow = examples.some((e) => e.row !== null && e.row !== undefined);
  const hasLine = examples.some((e) => e.line !== null && e.line !== undefined);
  const head = [hasRow && 'row', hasLine && 'line', ...keys].filter(Boolean);
  return aisEl('div', { class: 'ais-v-examples' }, aisEl('table', { class: 'ais-table', 'data-testid': 'ais-validation-examples' },
    aisEl('thead', {}, aisEl('tr', {}, head.map((h) => aisEl('th', {}, h)))),
    aisEl('tbody', {}, examples.map((e) => aisEl('tr', {},
      hasRow ? aisEl('td', {}, e.row === null || e.row === undefined ? '' : String(e.row)) : null,
      hasLine ? aisEl('td', {}, e.line === null || e.line === undefined ? '' : String(e.line)) : null,
      keys.map((k) => aisEl('td', { title: validationText((e.values || {})[k]).slice(0, 2000) }, k in (e.values || {}) ? validationText(e.values[k]) : '')))))));
}

function renderValidation({ model, el }) {
  validationStyle();
  el.classList.add('ais-validation');
  const st = { sub: null, poll: null, following: null, progress: null, message: '', destroyed: false };

  const title = aisEl('span', { class: 'ais-title', 'data-testid': 'ais-validation-title' });
  const badge = aisEl('span');
  const verdict = aisEl('span', { class: 'ais-v-verdict', 'data-testid': 'ais-validation-verdict' });
  const versionSelect = aisEl('select', { 'data-testid': 'ais-validation-version', title: 'Which version to validate again' });
  const rerunBtn = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-validation-rerun', onclick: () => rerun() }, 'Re-run');
  const summary = aisEl('div', { class: 'ais-muted', 'data-testid': 'ais-validation-summary' });
  const bar = aisEl('div');
  const progressText = aisEl('span', { class: 'ais-muted' });
  const progress = aisEl('div', { class: 'ais-row', 'data-testid': 'ais-validation-progress', style: { display: 'none' } },
    aisEl('div', { class: 'ais-progress' }, bar), progressText);
  const reportError = aisEl('div', { class: 'ais-v-fail', 'data-testid': 'ais-validation-report-error' });
  const pyErrors = aisEl('div');
  const jsErrors = aisEl('div');
  const rules = aisEl('div', { 'data-testid': 'ais-validation-rules' });
  const groups = aisEl('div', { 'data-testid': 'ais-validation-groups' });

  el.appendChild(aisEl('div', { class: 'ais-card' },
    aisEl('div', { class: 'ais-row' }, title, badge, verdict, aisEl('span', { class: 'ais-grow' }), versionSelect, rerunBtn),
    summary, progress, reportError, pyErrors, jsErrors, rules, groups));

  const report = () => model.get('report') || {};
  const datasetId = () => model.get('dataset_id') || report().dataset_id;
  const done = (r) => VALIDATION_FINISHED.includes(r.state);

  const renderHead = () => {
    const r = report();
    title.dataset.reportId = String(r.id || '');
    title.textContent = `Validation of ${model.get('dataset_name') || datasetId() || ''}${r.version ? ` · version ${r.version}` : ''}`;
    aisClear(badge).appendChild(aisBadge(r.state === 'passed' ? 'succeeded' : r.state === 'error' ? 'failed' : r.state === 'failed' ? 'failed' : r.state, { 'data-testid': 'ais-validation-state' }));
    badge.firstChild.textContent = String(r.state || 'unknown');
    verdict.textContent = r.passed === true ? '✔ passed' : r.passed === false ? '✖ failed' : '';
    verdict.className = `ais-v-verdict ${r.passed === true ? 'ais-v-pass' : r.passed === false ? 'ais-v-fail' : ''}`;
    const s = r.summary || {};
    const bits = [];
    if (s.rows !== undefined) bits.push(`${aisFormat.int(s.rows)} rows`);
    if (s.columns !== undefined) bits.push(`${aisFormat.int(s.columns)} columns`);
    if (s.errors !== undefined) bits.push(`${aisFormat.int(s.errors)} errors`);
    if (s.warnings !== undefined) bits.push(`${aisFormat.int(s.warnings)} warnings`);
    if (r.updated_at) bits.push(`checked ${aisFormat.ago(r.updated_at)}`);
    summary.textContent = bits.join(' · ');
    reportError.textContent = r.error ? String(r.error) : '';
    const running = !done(r) && !!r.id;
    rerunBtn.disabled = running;
    progress.style.display = running ? 'flex' : 'none';
    bar.style.width = `${Math.round((st.progress || 0) * 100)}%`;
    progressText.textContent = running ? `${r.state || 'pending'}${st.progress !== null ? ' ' + aisFormat.percent(st.progress) : ''}${st.message ? ' · ' + st.message : ''}` : '';
    const current = versionSelect.value;
    aisClear(versionSelect);
    versionSelect.append(aisEl('option', { value: 'same' }, `version ${r.version || '?'}`), aisEl('option', { value: 'latest' }, 'latest version'));
    versionSelect.value = current === 'latest' ? 'latest' : 'same';
  };

  const renderRules = () => {
    aisClear(rules);
    const r = report();
    const list = r.rules || [];
    if (!list.length) return;
    const findings = r.findings || [];
    rules.appendChild(aisEl('table', { class: 'ais-table' },
      aisEl('thead', {}, aisEl('tr', {}, ['', 'rule', 'severity', 'offending'].map((h) => aisEl('th', {}, h)))),
      aisEl('tbody', {}, list.map((rule, i) => {
        const own = findings.filter((f) => f.rule === i);
        const passed = !done(r) || !own.length ? null : own.every((f) => f.passed);
        const count = own.filter((f) => !f.passed).reduce((a, f) => a + (f.count || 0), 0);
        return aisEl('tr', { 'data-testid': 'ais-validation-rule', 'data-rule': String(i), 'data-passed': passed === null ? 'unknown' : String(passed) },
          aisEl('td', { class: passed ? 'ais-v-pass' : passed === false ? (rule.severity === 'warning' ? 'ais-v-warn' : 'ais-v-fail') : 'ais-muted' },
            passed === null ? '…' : passed ? '✔ pass' : '✖ fail'),
          aisEl('td', {}, `#${i + 1} ${validationRuleLabel(rule)}`),
          aisEl('td', {}, String(rule.severity || 'error')),
          aisEl('td', {}, passed === false ? aisFormat.int(count) : ''));
      }))));
  };

  const renderFinding = (f) => {
    const mark = f.passed ? '✔' : f.severity === 'error' ? '✖' : f.severity === 'warning' ? '⚠' : 'ℹ';
    const markClass = f.passed ? 'ais-v-pass' : f.severity === 'error' ? 'ais-v-fail' : 'ais-v-warn';
    const where = [f.rule === 'auto' ? 'automatic' : `rule #${Number(f.rule) + 1}`, f.check, f.column ? `column ${f.column}` : null].filter(Boolean).join(' · ');
    const box = aisEl('div', { class: 'ais-v-finding', 'data-testid': 'ais-validation-finding', 'data-passed': String(!!f.passed), 'data-severity': String(f.severity) },
      aisEl('div', {}, aisEl('span', { class: `ais-v-mark ${markClass}` }, mark), aisEl('span', {}, String(f.message || '')),
        !f.passed && f.count ? aisEl('span', { class: 'ais-muted' }, ` (${aisFormat.int(f.count)})`) : null),
      aisEl('div', { class: 'ais-muted' }, where));
    if (f.examples && f.examples.length) {
      box.appendChild(aisEl('details', {}, aisEl('summary', {}, `${f.examples.length} example row${f.examples.length === 1 ? '' : 's'}`), validationExamples(f.examples)));
    }
    return box;
  };

  const renderGroups = () => {
    aisClear(groups);
    const findings = report().findings || [];
    for (const [severity, label] of VALIDATION_SEVERITIES) {
      const items = findings.filter((f) => (f.severity || 'info') === severity);
      if (!items.length) continue;
      items.sort((a, b) => Number(!!a.passed) - Number(!!b.passed));
      const failed = items.filter((f) => !f.passed).length;
      const group = aisEl('details', { class: 'ais-v-group', 'data-testid': 'ais-validation-group', 'data-severity': severity, 'data-failed': String(failed), open: failed > 0 || severity === 'error' },
        aisEl('summary', {}, `${label}: ${failed} failed, ${items.length - failed} passed`),
        items.map(renderFinding));
      groups.appendChild(group);
    }
    if (done(report()) && !findings.length) groups.appendChild(aisEl('div', { class: 'ais-muted' }, 'No findings.'));
  };

  const render = () => { renderHead(); renderRules(); renderGroups(); };

  /* ---- following a run ---- */
  const stopFollowing = () => {
    if (st.sub) { st.sub.close(); st.sub = null; }
    clearInterval(st.poll);
    st.poll = null;
    st.following = null;
  };

  const setReport = (r) => {
    model.set('report', r);
    model.save_changes();
  };

  const fetchReport = async (vid) => {
    try {
      const r = await aisApi(`/datasets/${encodeURIComponent(datasetId())}/validations/${encodeURIComponent(vid)}`);
      if (st.destroyed || st.following !== vid) return;
      aisClear(jsErrors);
      if (done(r)) stopFollowing();
      setReport(r);
    } catch (err) {
      if (st.destroyed) return;
      aisClear(jsErrors).appendChild(aisErrorBox(err, () => fetchReport(vid)));
    }
  };

  const follow = (jobId, vid) => {
    stopFollowing();
    st.following = vid;
    if (jobId) {
      st.sub = aisEvents().subscribe(`job:${jobId}`, 0, (ev) => {
        if (st.following !== vid) return;
        const data = ev.data || {};
        if (ev.type === 'progress') {
          st.progress = typeof data.progress === 'number' ? data.progress : st.progress;
          st.message = data.message ? String(data.message) : st.message;
          renderHead();
        } else if (ev.type === 'status') {
          if (typeof data.progress === 'number') st.progress = data.progress;
          // the report is written in the transaction that ends the job: it is ready now
          if (VALIDATION_JOB_DONE.includes(data.state)) fetchReport(vid);
          else renderHead();
        }
      }, { onError: () => {} });
    }
    st.poll = setInterval(() => fetchReport(vid), VALIDATION_POLL_MS);
  };

  const rerun = async () => {
    const r = report();
    rerunBtn.disabled = true;
    aisClear(jsErrors);
    try {
      const version = versionSelect.value === 'latest' ? 'latest' : r.version;
      const started = await aisApi(`/datasets/${encodeURIComponent(datasetId())}/validate`, { method: 'POST', body: { version, rules: r.rules || [] } });
      if (st.destroyed) return;
      st.progress = 0;
      st.message = '';
      model.set('job', started.job);
      setReport(started.validation); // onReport follows the new job from here
    } catch (err) {
      aisClear(jsErrors).appendChild(aisErrorBox(err, () => rerun()));
      rerunBtn.disabled = false;
    }
  };

  const onReport = () => {
    const r = report();
    // a report still running when shown (validate(wait=False), or a re-run): follow it to the end
    if (r.id && !done(r) && st.following !== r.id) follow(r.job_id, r.id);
    if (done(r) && st.following === r.id) stopFollowing();
    render();
  };
  model.on('change:report', onReport);
  model.on('change:dataset_name', renderHead);
  const unbindError = aisBindError(model, pyErrors, () => model.send({ op: 'refresh' }));
  onReport();

  return () => {
    st.destroyed = true;
    stopFollowing();
    model.off('change:report', onReport);
    model.off('change:dataset_name', renderHead);
    unbindError();
  };
}

export default { render: aisMount(renderValidation) };
