// Dashboard: usage against quota and four lists. Each section renders (and fails) on its own;
// job states follow user:<you> and deployment states deployment:<id>, straight from the browser.

const AIS_SECTIONS = {
  datasets: {
    path: '/datasets', title: 'Datasets',
    columns: [
      ['Name', (d) => d.name],
      ['Version', (d) => `v${d.latest_version}`],
      ['Size', (d) => aisFormat.bytes(d.size_bytes)],
      ['Owner', (d) => d.owner],
      ['Updated', (d) => aisFormat.ago(d.updated_at)],
    ],
  },
  jobs: {
    path: '/jobs', title: 'Jobs',
    columns: [
      ['Name', (j) => j.name || j.id],
      ['Kind', (j) => j.kind],
      ['State', (j) => aisBadge(j.state, { 'data-testid': 'ais-dash-job-state', 'data-job-id': j.id, 'data-state': j.state })],
      ['Progress', (j) => (Number.isFinite(j.progress) ? aisFormat.percent(j.progress) : '')],
      ['GPUs', (j) => String((j.resources || {}).gpus || 0)],
      ['Updated', (j) => aisFormat.ago(j.updated_at)],
    ],
  },
  models: {
    path: '/models', title: 'Models',
    columns: [
      ['Name', (m) => m.name],
      ['Task', (m) => m.task || ''],
      ['Latest', (m) => (m.latest_version ? `v${m.latest_version}` : '–')],
      ['Owner', (m) => m.owner],
      ['Updated', (m) => aisFormat.ago(m.updated_at)],
    ],
  },
  deployments: {
    path: '/deployments', title: 'Deployments',
    columns: [
      ['Name', (d) => d.name],
      ['State', (d) => aisBadge(d.state, { 'data-testid': 'ais-dash-deployment-state', 'data-deployment-id': d.id, 'data-state': d.state })],
      ['Model', (d) => `${d.model_id}${d.model_version ? ' v' + d.model_version : ''}`],
      ['Replicas', (d) => `${d.ready_replicas ?? '?'}/${d.replicas}`],
      ['Updated', (d) => aisFormat.ago(d.updated_at)],
    ],
  },
};

function aisMeter(label, used, limit, format) {
  const fraction = limit > 0 ? used / limit : 0;
  return aisEl('div', { class: 'ais-usage-item', 'data-testid': 'ais-dash-usage-item', 'data-label': label, 'data-used': String(used), 'data-limit': String(limit ?? '') },
    aisEl('div', { class: 'ais-row' }, aisEl('span', { class: 'ais-grow' }, label),
      aisEl('span', { class: 'ais-muted' }, limit > 0 ? `${format(used)} of ${format(limit)}` : format(used))),
    limit > 0 ? aisEl('div', { class: `ais-meter${fraction > 1 ? ' ais-over' : ''}` },
      aisEl('div', { style: { width: `${Math.min(1, fraction) * 100}%` } })) : null);
}

function renderDashboard({ model, el }) {
  const st = {
    me: model.get('me') || {},
    lists: {},
    errors: {},
    subs: [],
    deploymentSubs: new Map(),
  };
  const title = aisEl('span', { class: 'ais-title' }, 'AI Studio');
  const live = aisEl('span', { class: 'ais-muted', 'data-testid': 'ais-dash-live' });
  const refreshBtn = aisEl('button', { class: 'ais-btn', type: 'button', onclick: () => reloadAll() }, 'Refresh');
  const pyError = aisEl('div');
  const usage = aisEl('div', { class: 'ais-card', 'data-testid': 'ais-dash-usage' });
  const sectionEls = {};
  for (const [name, spec] of Object.entries(AIS_SECTIONS)) {
    sectionEls[name] = aisEl('div', { class: 'ais-card', 'data-testid': `ais-dash-${name}` });
    sectionEls[name].dataset.title = spec.title;
  }
  el.appendChild(aisEl('div', { class: 'ais-dashboard', 'data-testid': 'ais-dashboard' },
    aisEl('div', { class: 'ais-row' }, title, aisEl('span', { class: 'ais-grow' }), live, refreshBtn),
    pyError, usage,
    aisEl('div', { style: { display: 'grid', gridTemplateColumns: 'repeat(auto-fit, minmax(420px, 1fr))', gap: '8px' } },
      Object.values(sectionEls))));

  /* ---- rendering ---- */
  const renderUsage = () => {
    aisClear(usage);
    const me = st.me || {};
    if (st.errors.me) {
      usage.appendChild(aisEl('div', { class: 'ais-title' }, 'Usage'));
      usage.appendChild(aisErrorBox(st.errors.me, () => reloadMe()));
      return;
    }
    if (!me.username) return;
    title.textContent = `AI Studio — ${me.display_name || me.username}`;
    const q = me.quotas || {};
    const u = me.usage || {};
    const gpuHours = ((u.gpu_seconds || 0) + (u.gpu_seconds_running || 0)) / 3600;
    const price = u.price_per_gpu_hour || 0;
    const cost = (u.cost || 0) + ((u.gpu_seconds_running || 0) / 3600) * price;
    usage.appendChild(aisEl('div', { class: 'ais-row' },
      aisEl('span', { class: 'ais-title' }, 'Usage'),
      aisEl('span', { class: 'ais-muted' }, `${u.period || ''} · tier ${me.tier || 'default'}`)));
    usage.appendChild(aisEl('div', { style: { display: 'grid', gridTemplateColumns: 'repeat(auto-fit, minmax(200px, 1fr))', gap: '4px 16px' } },
      aisMeter('Storage', u.storage_bytes || 0, q.storage_bytes, aisFormat.bytes),
      aisMeter('GPU-hours', gpuHours, q.gpu_hours_per_month, (v) => aisFormat.number(v, 3)),
      aisMeter('Cost', cost, price > 0 ? q.gpu_hours_per_month * price : null, aisFormat.money),
      aisMeter('Active jobs', u.active_jobs || 0, q.concurrent_jobs, (v) => String(v))));
  };

  const renderSection = (name) => {
    const spec = AIS_SECTIONS[name];
    const box = aisClear(sectionEls[name]);
    const items = st.lists[name] || [];
    box.appendChild(aisEl('div', { class: 'ais-row' },
      aisEl('span', { class: 'ais-title' }, spec.title),
      aisEl('span', { class: 'ais-muted', 'data-testid': 'ais-dash-count' }, st.errors[name] ? '' : String(items.length))));
    if (st.errors[name]) {
      box.appendChild(aisErrorBox(st.errors[name], () => reloadSection(name)));
      return;
    }
    if (!items.length) {
      box.appendChild(aisEl('div', { class: 'ais-muted' }, `No ${spec.title.toLowerCase()} yet.`));
      return;
    }
    box.appendChild(aisEl('table', { class: 'ais-table' },
      aisEl('thead', {}, aisEl('tr', {}, spec.columns.map(([label]) => aisEl('th', {}, label)))),
      aisEl('tbody', {}, items.map((item) => aisEl('tr', { 'data-id': item.id },
        spec.columns.map(([, cell]) => {
          const value = cell(item);
          return aisEl('td', { title: typeof value === 'string' ? value : null }, value);
        }))))));
  };

  const renderAll = () => {
    renderUsage();
    for (const name of Object.keys(AIS_SECTIONS)) renderSection(name);
  };

  /* ---- REST from the browser ---- */
  const reloadMe = async () => {
    try {
      st.me = await aisApi('/me');
      delete st.errors.me;
    } catch (err) {
      st.errors.me = err;
    }
    renderUsage();
    subscribeUser();
  };

  const reloadSection = async (name) => {
    try {
      const page = await aisApi(AIS_SECTIONS[name].path, { params: { limit: model.get('limit') || 20, sort: '-updated_at' } });
      st.lists[name] = page.items || [];
      delete st.errors[name];
    } catch (err) {
      st.errors[name] = err;
    }
    renderSection(name);
    if (name === 'deployments') subscribeDeployments(false);
  };

  const reloadAll = async () => {
    refreshBtn.disabled = true;
    try {
      await reloadMe();
      await Promise.all(Object.keys(AIS_SECTIONS).map(reloadSection));
    } finally {
      refreshBtn.disabled = false;
    }
  };

  /* ---- live ---- */
  const upsert = (name, item, toTop) => {
    const list = st.lists[name] || (st.lists[name] = []);
    const i = list.findIndex((x) => x.id === item.id);
    if (i >= 0) list[i] = { ...list[i], ...item };
    else if (toTop) list.unshift(item);
    if (toTop && i > 0) list.unshift(list.splice(i, 1)[0]);
    const limit = model.get('limit') || 20;
    if (list.length > limit) list.length = limit;
    renderSection(name);
  };

  let userSub = null;
  let userTopic = null;
  const subscribeUser = () => {
    const me = st.me || {};
    if (!me.username) return;
    const topic = `user:${me.username}`;
    if (userSub && userTopic === topic) return;
    if (userSub) userSub.close();
    userTopic = topic;
    const since = (model.get('since') || {})[topic];
    const known = Number.isInteger(since);
    let first = true;
    userSub = aisEvents().subscribe(topic, known ? since : null, (m) => {
      if (m.type === 'job' && m.data && m.data.id) {
        upsert('jobs', m.data, true);
        // a job that starts or ends moves the usage meters
        if (['running', 'succeeded', 'failed', 'canceled', 'lost'].includes(m.data.state)) reloadMeQuietly();
      }
    }, {
      onAck: (ack) => {
        if ((first && !known) || ack.pruned_through !== undefined) reloadSection('jobs');
        first = false;
      },
    });
  };

  let meTimer = null;
  const reloadMeQuietly = () => {
    clearTimeout(meTimer);
    meTimer = setTimeout(async () => {
      try { st.me = await aisApi('/me'); delete st.errors.me; renderUsage(); } catch (e) { /* the meters keep their last values */ }
    }, 500);
  };

  const subscribeDeployments = (reloadOnAck) => {
    const wanted = new Set((st.lists.deployments || []).map((d) => d.id));
    for (const [id, sub] of st.deploymentSubs) if (!wanted.has(id)) { sub.close(); st.deploymentSubs.delete(id); }
    let pending = 0;
    for (const id of wanted) {
      if (st.deploymentSubs.has(id)) continue;
      pending += 1;
      let acked = false;
      st.deploymentSubs.set(id, aisEvents().subscribe(`deployment:${id}`, null, (m) => {
        if (m.type === 'status' && m.data) upsert('deployments', { id, ...m.data }, false);
      }, {
        onAck: () => {
          if (acked) return;
          acked = true;
          pending -= 1;
          // live from the ack on; one reload covers what changed before it
          if (reloadOnAck && pending === 0) reloadSection('deployments');
        },
      }));
    }
  };

  /* ---- wiring ---- */
  const fromKernel = () => {
    st.me = model.get('me') || {};
    st.errors = { ...(model.get('section_errors') || {}) };
    for (const name of Object.keys(AIS_SECTIONS)) st.lists[name] = (model.get(name) || []).slice();
    renderAll();
    if (userSub) { userSub.close(); userSub = null; }
    subscribeUser();
    subscribeDeployments(true);
  };
  const unbindError = aisBindError(model, pyError, () => reloadAll());
  const unbindLive = aisEvents().onState((state) => {
    live.dataset.state = state;
    live.textContent = state === 'open' ? '● live' : state === 'closed' ? '' : `○ ${state}…`;
  });
  model.on('change:revision', fromKernel);
  fromKernel();

  return () => {
    clearTimeout(meTimer);
    if (userSub) userSub.close();
    for (const sub of st.deploymentSubs.values()) sub.close();
    unbindError();
    unbindLive();
    model.off('change:revision', fromKernel);
  };
}

export default { render: aisMount(renderDashboard) };
