// ModelCard and DeploymentCard (one module; the `kind` trait picks the card).

const AIS_DEPLOYMENT_UP = ['pending', 'loading', 'ready'];

function aisKeyMetrics(metrics, count = 4) {
  const entries = Object.entries(metrics || {}).filter(([, v]) => typeof v === 'number');
  // losses and accuracies first: what people compare versions by
  const rank = (k) => (/acc|f1|auc|rmse|mae|loss/i.test(k) ? (/val|eval|test/i.test(k) ? 0 : 1) : 2);
  entries.sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]));
  return entries.slice(0, count).map(([k, v]) => `${k} ${aisFormat.number(v)}`).join(' · ');
}

function renderModelCard({ model, el }) {
  const body = aisEl('div');
  const pyError = aisEl('div');
  const jsError = aisEl('div');
  const card = aisEl('div', { class: 'ais-card', 'data-testid': 'ais-model-card', 'data-model-id': model.get('registry_id') }, pyError, jsError, body);
  el.appendChild(card);

  const draw = (record, versions) => {
    aisClear(body);
    if (!record || !record.id) return;
    const refresh = aisEl('button', { class: 'ais-btn', type: 'button', onclick: () => reload() }, 'Refresh');
    body.appendChild(aisEl('div', { class: 'ais-row' },
      aisEl('span', { class: 'ais-title' }, record.name),
      aisEl('span', { class: 'ais-muted' }, [record.task, `owner ${record.owner}`, record.visibility].filter(Boolean).join(' · ')),
      aisEl('span', { class: 'ais-grow' }), refresh));
    if (record.description) body.appendChild(aisEl('div', {}, record.description));
    if ((record.tags || []).length) body.appendChild(aisEl('div', { class: 'ais-row' }, record.tags.map((t) => aisEl('span', { class: 'ais-badge' }, t))));
    if (!versions.length) {
      body.appendChild(aisEl('div', { class: 'ais-muted' }, 'No versions yet.'));
      return;
    }
    body.appendChild(aisEl('table', { class: 'ais-table' },
      aisEl('thead', {}, aisEl('tr', {}, ['Version', 'Stage', 'Key metrics', 'Job', 'Created'].map((h) => aisEl('th', {}, h)))),
      aisEl('tbody', {}, versions.map((v) => aisEl('tr', { 'data-testid': 'ais-model-version', 'data-version': String(v.version) },
        aisEl('td', {}, `v${v.version}`),
        aisEl('td', {}, aisBadge(v.stage, { 'data-testid': 'ais-model-stage', 'data-stage': v.stage })),
        aisEl('td', {}, aisKeyMetrics(v.metrics)),
        aisEl('td', { class: 'ais-muted' }, v.job_id || ''),
        aisEl('td', { class: 'ais-muted' }, aisFormat.ago(v.created_at)))))));
  };

  const reload = async () => {
    aisClear(jsError);
    try {
      const id = encodeURIComponent(model.get('registry_id'));
      const [record, page] = await Promise.all([aisApi(`/models/${id}`), aisApi(`/models/${id}/versions`, { params: { limit: 20 } })]);
      draw(record, page.items || []);
    } catch (err) {
      jsError.appendChild(aisErrorBox(err, reload));
    }
  };

  const fromKernel = () => draw(model.get('record'), model.get('versions') || []);
  const unbind = aisBindError(model, pyError, reload);
  model.on('change:revision', fromKernel);
  fromKernel();
  return () => { unbind(); model.off('change:revision', fromKernel); };
}

function renderDeploymentCard({ model, el }) {
  const id = model.get('deployment_id');
  const topic = `deployment:${id}`;
  let dep = { ...(model.get('deployment') || {}) };
  let sub = null;
  const replicas = new Map(); // index -> replica status

  const title = aisEl('span', { class: 'ais-title' });
  const badgeSlot = aisEl('span');
  const info = aisEl('span', { class: 'ais-muted', 'data-testid': 'ais-deployment-replicas' });
  const message = aisEl('div', { class: 'ais-muted', 'data-testid': 'ais-deployment-message' });
  const stopBtn = aisEl('button', { class: 'ais-btn ais-danger', type: 'button', 'data-testid': 'ais-deployment-stop', onclick: () => act('stop') }, 'Stop');
  const startBtn = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-deployment-start', onclick: () => act('start') }, 'Start');
  const pyError = aisEl('div');
  const jsError = aisEl('div');
  const table = aisEl('div');
  const endpoint = aisEl('div', { class: 'ais-muted' });
  el.appendChild(aisEl('div', { class: 'ais-card', 'data-testid': 'ais-deployment-card', 'data-deployment-id': id },
    aisEl('div', { class: 'ais-row' }, title, badgeSlot, info, aisEl('span', { class: 'ais-grow' }), startBtn, stopBtn),
    message, pyError, jsError, table, endpoint));

  const draw = () => {
    title.textContent = dep.name || id;
    aisClear(badgeSlot).appendChild(aisBadge(dep.state, { 'data-testid': 'ais-deployment-state', 'data-state': dep.state || '' }));
    info.textContent = `model ${dep.model_id || '?'}${dep.model_version ? ' v' + dep.model_version : ''} · ${dep.ready_replicas ?? 0}/${dep.replicas ?? '?'} replicas ready`;
    message.textContent = dep.status_message || dep.message || '';
    const stopped = dep.desired_state === 'stopped' || ['stopped', 'failed'].includes(dep.state);
    stopBtn.disabled = stopped || !dep.state;
    startBtn.disabled = !stopped;
    endpoint.textContent = dep.id ? `POST ${aisConfig().apiUrl}/deployments/${dep.id}/predict` : '';
    aisClear(table);
    const rows = [...replicas.values()].sort((a, b) => a.index - b.index);
    if (!rows.length) return;
    table.appendChild(aisEl('table', { class: 'ais-table' },
      aisEl('thead', {}, aisEl('tr', {}, ['Replica', 'State', 'Version', 'Restarts', 'Last error'].map((h) => aisEl('th', {}, h)))),
      aisEl('tbody', {}, rows.map((r) => aisEl('tr', { 'data-testid': 'ais-deployment-replica', 'data-index': String(r.index) },
        aisEl('td', {}, `#${r.index}`),
        aisEl('td', {}, aisBadge(r.state, { 'data-state': r.state })),
        aisEl('td', {}, r.model_version ? `v${r.model_version}` : ''),
        aisEl('td', {}, String(r.restarts ?? 0)),
        aisEl('td', { title: r.last_error || null }, r.last_error || ''))))));
  };

  const setRecord = (record) => {
    dep = { ...record };
    replicas.clear();
    for (const r of record.replica_status || []) replicas.set(r.index, r);
    draw();
  };

  const showError = (err, retry) => {
    aisClear(jsError);
    if (err) jsError.appendChild(aisErrorBox(err, async () => { aisClear(jsError); await retry(); }));
  };

  const reload = async () => {
    try {
      setRecord(await aisApi(`/deployments/${encodeURIComponent(id)}`));
      showError(null);
    } catch (err) {
      showError(err, reload);
    }
  };

  const act = async (verb) => {
    stopBtn.disabled = true;
    startBtn.disabled = true;
    try {
      const record = await aisApi(`/deployments/${encodeURIComponent(id)}/${verb}`, { method: 'POST', timeoutMs: 60000 });
      if (record && record.id) setRecord(record);
      showError(null);
    } catch (err) {
      showError(err, () => act(verb));
    }
    draw();
  };

  const onEvent = (m) => {
    const data = m.data || {};
    if (m.type === 'status') {
      dep = { ...dep, ...data, status_message: data.message ?? dep.status_message };
      if (data.state === 'stopped') dep.desired_state = 'stopped';
      else if (AIS_DEPLOYMENT_UP.includes(data.state)) dep.desired_state = 'running';
    } else if (m.type === 'replica' && Number.isInteger(data.index)) {
      replicas.set(data.index, { ...(replicas.get(data.index) || {}), ...data });
    }
    draw();
  };

  const subscribe = () => {
    if (sub) sub.close();
    const since = (model.get('since') || {})[topic];
    const known = Number.isInteger(since);
    let first = true;
    sub = aisEvents().subscribe(topic, known ? since : null, onEvent, {
      onAck: (ack) => {
        if ((first && !known) || ack.pruned_through !== undefined) reload();
        first = false;
      },
      onError: (err) => showError(err, subscribe),
    });
  };

  const fromKernel = () => { setRecord(model.get('deployment') || {}); subscribe(); };
  const onRecord = () => setRecord(model.get('deployment') || {});
  const unbind = aisBindError(model, pyError, reload);
  model.on('change:revision', fromKernel);
  model.on('change:deployment', onRecord);
  fromKernel();
  return () => {
    if (sub) sub.close();
    unbind();
    model.off('change:revision', fromKernel);
    model.off('change:deployment', onRecord);
  };
}

export default {
  render: aisMount((ctx) => (ctx.model.get('kind') === 'deployment' ? renderDeploymentCard(ctx) : renderModelCard(ctx))),
};
