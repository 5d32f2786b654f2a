// ModelBuilder: edit a layer list; shapes, errors and the parameter count come back from Python
// (traits shapes, errors, param_count, spec_json, python_code), the compute estimate is fetched
// here from POST /compute/estimate, debounced. Every label, column name and error is a text node.

const AIS_BUILDER_CSS = `
.ais-builder .ais-section { margin: 8px 0; }
.ais-builder .ais-section > .ais-title { margin-bottom: 4px; }
.ais-builder input[type=text] { font: inherit; padding: 1px 4px; border: 1px solid var(--jp-border-color1, #bbb);
  border-radius: 3px; background: var(--jp-layout-color0, #fff); color: inherit; width: 7em; }
.ais-builder select { font: inherit; }
.ais-builder .ais-builder-layer { display: flex; flex-direction: column; gap: 4px; }
.ais-builder .ais-builder-layer.ais-bad { border-color: var(--jp-error-color1, #d32f2f); }
.ais-builder .ais-builder-field { display: inline-flex; gap: 4px; align-items: center; }
.ais-builder .ais-builder-field.ais-bad input { border-color: var(--jp-error-color1, #d32f2f); }
.ais-builder .ais-builder-shape { font-family: var(--jp-code-font-family, monospace); font-size: 12px; }
.ais-builder .ais-builder-msg { color: var(--jp-error-color1, #d32f2f); font-size: 12px; }
.ais-builder .ais-builder-index { min-width: 1.5em; text-align: right; }
.ais-builder pre.ais-log { max-height: 260px; }
.ais-builder .ais-builder-est td:last-child { text-align: right; }
.ais-builder .ais-builder-fit { font-weight: 600; }
.ais-builder .ais-builder-fit.ais-ok { color: #2e7d32; }
.ais-builder .ais-builder-fit.ais-no { color: #c62828; }
`;

function aisBuilderStyle() {
  if (document.getElementById('ais-builder-style')) return;
  document.head.appendChild(aisEl('style', { id: 'ais-builder-style' }, AIS_BUILDER_CSS));
}

function aisShape(shape) {
  if (!Array.isArray(shape)) return '?';
  return '(' + shape.join(', ') + (shape.length === 1 ? ',)' : ')');
}

// What an edited text field means: a number when it reads as one, the field's special value
// ('auto'), null (= leave it out, so the default applies) when empty, else the raw text, which
// Python reports as an error on that field.
function aisParseField(field, text) {
  const v = text.trim();
  if (v === '') return null;
  if (field.special && v === field.special) return v;
  if (field.kind === 'int' && /^[+-]?\d+$/.test(v)) return parseInt(v, 10);
  if (field.kind === 'float' && /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v)) return parseFloat(v);
  return v;
}

// Short durations too: a small model's step takes microseconds.
function aisBuilderSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  if (s >= 1) return aisFormat.duration(s);
  if (s >= 1e-3) return `${aisFormat.number(s * 1e3, 3)} ms`;
  return `${aisFormat.number(s * 1e6, 3)} µs`;
}

function aisCopyButton(getText, testid) {
  const button = aisEl('button', {
    class: 'ais-btn', type: 'button', 'data-testid': testid,
    onclick: async () => {
      const text = getText();
      try {
        await navigator.clipboard.writeText(text);
      } catch (e) {
        // no clipboard permission (plain http, iframe): copy through a hidden text area
        const area = aisEl('textarea', { style: { position: 'fixed', opacity: '0' } }, text);
        document.body.appendChild(area);
        area.select();
        try { document.execCommand('copy'); } finally { area.remove(); }
      }
      button.textContent = 'Copied';
      setTimeout(() => { button.textContent = 'Copy'; }, 1200);
    },
  }, 'Copy');
  return button;
}

function aisBuilderRender({ model, el }) {
  aisBuilderStyle();
  el.classList.add('ais-builder');
  const disposers = [];
  const on = (event, fn) => { model.on(event, fn); disposers.push(() => model.off(event, fn)); };
  const save = (changes) => {
    for (const [key, value] of Object.entries(changes)) model.set(key, value);
    model.save_changes();
  };
  const errorsAt = (index) => (model.get('errors') || []).filter((e) => e.index === index);

  /* ---------------------------------------------------------------- header ---------- */
  const params = aisEl('span', { class: 'ais-badge', 'data-testid': 'ais-builder-params' });
  const busy = aisEl('span', { class: 'ais-muted' });
  const topError = aisEl('div');
  el.appendChild(aisEl('div', { class: 'ais-row' }, aisEl('span', { class: 'ais-title ais-grow' }, 'Model builder'), busy, params));
  el.appendChild(topError);
  disposers.push(aisBindError(model, topError, () => model.send({ op: 'refresh' })));

  /* ---------------------------------------------------------------- input ----------- */
  const inputBox = aisEl('input', { type: 'text', 'data-testid': 'ais-builder-input-shape', title: 'One sample without the batch axis, e.g. 20 or 3, 32, 32' });
  const outputsBox = aisEl('input', { type: 'text', inputmode: 'numeric', 'data-testid': 'ais-builder-outputs', title: "Resolves a last linear layer's out_features 'auto' in this preview; the trainer uses the data's class count" });
  const inputMsg = aisEl('div', { class: 'ais-builder-msg', 'data-testid': 'ais-builder-input-error' });
  const readShape = () => {
    const parts = inputBox.value.split(/[\s,x×()]+/).filter(Boolean);
    return parts.map((p) => (/^[+-]?\d+$/.test(p) ? parseInt(p, 10) : p));
  };
  inputBox.addEventListener('input', () => save({ input_shape: readShape() }));
  outputsBox.addEventListener('input', () => {
    const v = outputsBox.value.trim();
    save({ outputs: v === '' ? null : (/^[+-]?\d+$/.test(v) ? parseInt(v, 10) : v) });
  });
  el.appendChild(aisEl('div', { class: 'ais-section' },
    aisEl('div', { class: 'ais-row' }, aisEl('label', {}, 'Input shape ', inputBox), aisEl('label', {}, 'Outputs ', outputsBox)),
    inputMsg));
  const showInput = () => {
    const shape = model.get('input_shape') || [];
    if (document.activeElement !== inputBox && readShape().join(',') !== shape.join(',')) inputBox.value = shape.join(', ');
    const outputs = model.get('outputs');
    if (document.activeElement !== outputsBox) outputsBox.value = outputs === null || outputs === undefined ? '' : String(outputs);
    aisClear(inputMsg);
    for (const e of errorsAt(-1)) inputMsg.appendChild(aisEl('div', {}, e.message));
  };

  /* ---------------------------------------------------------------- layers ---------- */
  const list = aisEl('div', { 'data-testid': 'ais-builder-layers' });
  const catalog = () => model.get('catalog') || {};
  let shown = ''; // the layers (as JSON) the list's inputs show
  const cards = [];

  const setLayers = (layers, rebuild) => {
    shown = JSON.stringify(layers);
    save({ layers });
    if (rebuild) renderLayers();
  };

  const fieldInput = (index, field, layer) => {
    const current = layer[field.name];
    const edit = (value) => {
      const layers = (model.get('layers') || []).map((l) => ({ ...l }));
      if (value === null) delete layers[index][field.name];
      else layers[index][field.name] = value;
      setLayers(layers, false);
    };
    let input;
    if (field.kind === 'bool') {
      input = aisEl('input', { type: 'checkbox', checked: current === undefined ? !!field.default : !!current, onchange: () => edit(input.checked) });
    } else if (field.kind === 'choice') {
      input = aisEl('select', { onchange: () => edit(input.value) },
        field.choices.map((c) => aisEl('option', { value: c, selected: c === (current === undefined ? field.default : current) }, c)));
    } else {
      const hint = field.special ? `number or ${field.special}` : (field.default !== undefined && field.default !== null ? `default ${field.default}` : (field.optional ? 'default' : 'required'));
      input = aisEl('input', {
        type: 'text', inputmode: field.kind === 'int' ? 'numeric' : 'decimal', placeholder: hint,
        value: current === undefined || current === null ? '' : String(current),
      });
      // every keystroke goes to the kernel at once (it recomputes in a millisecond): a delayed
      // edit could land after a reorder and change the wrong layer
      input.addEventListener('input', () => edit(aisParseField(field, input.value)));
    }
    const range = field.min !== undefined ? ` (${field.min}…${field.max !== undefined ? field.max : '<' + field.below})` : '';
    return aisEl('label', { class: 'ais-builder-field', title: (field.help || '') + range, 'data-field': field.name }, field.label, input);
  };

  const renderLayers = () => {
    aisClear(list);
    cards.length = 0;
    const layers = model.get('layers') || [];
    shown = JSON.stringify(layers);
    layers.forEach((layer, index) => {
      const type = layer && typeof layer === 'object' ? layer.type : undefined;
      const info = catalog()[type];
      // structural edits start from the model's layers, not this render's: field edits since
      // then went to the model without re-rendering
      const move = (delta) => {
        const next = (model.get('layers') || []).slice();
        const [item] = next.splice(index, 1);
        next.splice(Math.max(0, Math.min(next.length, index + delta)), 0, item);
        setLayers(next, true);
      };
      const shape = aisEl('span', { class: 'ais-builder-shape ais-muted ais-grow', 'data-testid': 'ais-builder-shape' });
      const msgs = aisEl('div', { class: 'ais-builder-msg', 'data-testid': 'ais-builder-layer-error' });
      const fields = info ? info.fields.map((f) => fieldInput(index, f, layer)) : [];
      const card = aisEl('div', { class: 'ais-card ais-builder-layer', 'data-testid': 'ais-builder-layer', 'data-index': String(index) },
        aisEl('div', { class: 'ais-row' },
          aisEl('span', { class: 'ais-muted ais-builder-index' }, String(index)),
          aisEl('b', { title: info ? info.help : '' }, info ? info.label : String(type === undefined ? '(no type)' : type)),
          shape,
          aisEl('button', { class: 'ais-btn', type: 'button', title: 'Insert a layer of the type chosen below after this one', 'data-testid': 'ais-builder-insert', onclick: () => insertAt(index + 1) }, '+'),
          aisEl('button', { class: 'ais-btn', type: 'button', title: 'Move up', 'data-testid': 'ais-builder-up', disabled: index === 0, onclick: () => move(-1) }, '↑'),
          aisEl('button', { class: 'ais-btn', type: 'button', title: 'Move down', 'data-testid': 'ais-builder-down', disabled: index === layers.length - 1, onclick: () => move(1) }, '↓'),
          aisEl('button', { class: 'ais-btn ais-danger', type: 'button', title: 'Remove', 'data-testid': 'ais-builder-remove',
            onclick: () => setLayers((model.get('layers') || []).filter((_, i) => i !== index), true) }, '✕')),
        fields.length ? aisEl('div', { class: 'ais-row' }, fields) : null,
        msgs);
      cards.push({ card, shape, msgs });
      list.appendChild(card);
    });
    if (!layers.length) list.appendChild(aisEl('div', { class: 'ais-muted' }, 'No layers yet: add one below.'));
    showStatus();
  };

  const showStatus = () => {
    const shapes = model.get('shapes') || [];
    cards.forEach(({ card, shape, msgs }, index) => {
      const s = shapes[index];
      shape.textContent = s ? `${aisShape(s.input_shape)} → ${aisShape(s.output_shape)}${s.params ? ' · ' + aisFormat.int(s.params) + ' params' : ''}` : '–';
      const errs = errorsAt(index);
      aisClear(msgs);
      for (const e of errs) msgs.appendChild(aisEl('div', {}, e.message));
      card.classList.toggle('ais-bad', errs.length > 0);
      for (const label of card.querySelectorAll('.ais-builder-field')) {
        label.classList.toggle('ais-bad', errs.some((e) => e.field === label.dataset.field));
      }
    });
    const count = model.get('param_count');
    params.textContent = count === null || count === undefined ? 'Parameters: – (fix the errors)' : `Parameters: ${aisFormat.int(count)}`;
    showInput();
  };

  const typeSelect = aisEl('select', { 'data-testid': 'ais-builder-type' });
  const fillTypes = () => {
    aisClear(typeSelect);
    const groups = {};
    for (const [type, info] of Object.entries(catalog())) (groups[info.group] = groups[info.group] || []).push([type, info]);
    for (const [group, items] of Object.entries(groups)) {
      typeSelect.appendChild(aisEl('optgroup', { label: group }, items.map(([type, info]) => aisEl('option', { value: type }, info.label))));
    }
  };
  fillTypes();
  function insertAt(index) {
    const info = catalog()[typeSelect.value];
    if (!info) return;
    const next = (model.get('layers') || []).slice();
    next.splice(index === undefined ? next.length : index, 0, { ...info.starter });
    setLayers(next, true);
  }
  const addButton = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-builder-add', onclick: () => insertAt() }, 'Add layer');
  el.appendChild(aisEl('div', { class: 'ais-section' },
    aisEl('div', { class: 'ais-title' }, 'Layers'), list,
    aisEl('div', { class: 'ais-row' }, typeSelect, addButton)));

  on('change:layers', () => { if (JSON.stringify(model.get('layers') || []) !== shown) renderLayers(); });
  on('change:shapes', showStatus);
  on('change:errors', showStatus);
  on('change:param_count', showStatus);
  on('change:input_shape', showInput);
  on('change:outputs', showInput);
  on('change:catalog', () => { fillTypes(); renderLayers(); });
  on('change:loading', () => { busy.textContent = model.get('loading') ? 'working…' : ''; });

  /* ---------------------------------------------------------------- estimate -------- */
  const numberInput = (name, testid, isFloat) => {
    const input = aisEl('input', { type: 'text', inputmode: isFloat ? 'decimal' : 'numeric', 'data-testid': testid, value: String(model.get(name)) });
    input.addEventListener('change', () => {
      const v = isFloat ? parseFloat(input.value) : parseInt(input.value, 10);
      const ok = Number.isFinite(v) && v > 0 && (isFloat || String(v) === input.value.trim());
      input.classList.toggle('ais-bad', !ok);
      input.style.borderColor = ok ? '' : 'var(--jp-error-color1, #d32f2f)';
      input.title = ok ? '' : `${name.replace('_', ' ')} is a positive ${isFloat ? 'number' : 'whole number'}`;
      if (ok) save({ [name]: v });
    });
    on(`change:${name}`, () => { if (document.activeElement !== input) input.value = String(model.get(name)); });
    return input;
  };
  const batchInput = numberInput('batch_size', 'ais-builder-batch', false);
  const epochsInput = numberInput('epochs', 'ais-builder-epochs', false);
  const lrInput = numberInput('learning_rate', 'ais-builder-lr', true);
  const gpuSelect = aisEl('select', { 'data-testid': 'ais-builder-gpu', onchange: () => save({ gpu: gpuSelect.value }) },
    (model.get('gpu_types') || []).map((g) => aisEl('option', { value: g.id, selected: g.id === model.get('gpu') }, g.name)));
  const precisions = [['fp32', 'fp32'], ['bf16_mixed', 'bf16 mixed'], ['fp16_mixed', 'fp16 mixed'], ['bf16', 'bf16']];
  const precisionSelect = aisEl('select', { 'data-testid': 'ais-builder-precision', onchange: () => save({ precision: precisionSelect.value }) },
    precisions.map(([v, label]) => aisEl('option', { value: v, selected: v === model.get('precision') }, label)));
  on('change:gpu', () => { gpuSelect.value = model.get('gpu'); });
  on('change:precision', () => { precisionSelect.value = model.get('precision'); });
  const estimateBox = aisEl('div', { 'data-testid': 'ais-builder-estimate' });
  el.appendChild(aisEl('div', { class: 'ais-section' },
    aisEl('div', { class: 'ais-title' }, 'Compute estimate'),
    aisEl('div', { class: 'ais-row' },
      aisEl('label', {}, 'Batch ', batchInput), aisEl('label', {}, 'GPU ', gpuSelect),
      aisEl('label', {}, 'Precision ', precisionSelect), aisEl('label', {}, 'Epochs ', epochsInput)),
    estimateBox));

  const showEstimate = (r) => {
    aisClear(estimateBox);
    const m = r.memory;
    const c = r.compute;
    const row = (label, value) => aisEl('tr', {}, aisEl('td', {}, label), aisEl('td', {}, value));
    const meter = aisEl('div', { class: 'ais-meter' + (m.fits ? '' : ' ais-over'), title: aisFormat.percent(m.utilisation_of_gpu_memory, 1) },
      aisEl('div', { style: { width: Math.min(100, m.utilisation_of_gpu_memory * 100) + '%' } }));
    estimateBox.appendChild(aisEl('div', { class: 'ais-row' },
      aisEl('span', { class: 'ais-builder-fit ' + (m.fits ? 'ais-ok' : 'ais-no'), 'data-testid': 'ais-builder-fits' },
        m.fits ? `Fits on one ${r.gpu_name}` : `Does not fit on one ${r.gpu_name}`),
      aisEl('span', { class: 'ais-muted' }, `${aisFormat.bytes(m.total_bytes)} of ${aisFormat.bytes(m.gpu_memory_bytes)}`)));
    estimateBox.appendChild(meter);
    const memory = aisEl('table', { class: 'ais-table ais-builder-est' },
      row('Weights', aisFormat.bytes(m.weights)), row('Gradients', aisFormat.bytes(m.gradients)),
      row('Optimizer state', aisFormat.bytes(m.optimizer_state)), row('Activations (one batch)', aisFormat.bytes(m.activations)),
      row('Peak allocated', aisFormat.bytes(m.peak_bytes)), row('CUDA context + allocator slack', aisFormat.bytes(m.cuda_context + m.allocator_slack)),
      row('Total needed', aisFormat.bytes(m.total_bytes)));
    const compute = aisEl('table', { class: 'ais-table ais-builder-est' },
      row('Throughput', `${aisFormat.compact(c.samples_per_second)} samples/s`), row('Step', aisBuilderSeconds(c.step_seconds)),
      row('Epoch', c.epoch_seconds === null || c.epoch_seconds === undefined ? '– (choose a dataset)' : aisFormat.duration(c.epoch_seconds)),
      row('Total', c.total_seconds === null || c.total_seconds === undefined ? '–' : aisFormat.duration(c.total_seconds)),
      row('GPU hours', c.gpu_hours === null || c.gpu_hours === undefined ? '–' : aisFormat.number(c.gpu_hours, 3)),
      row('Cost', aisFormat.money(c.cost)));
    estimateBox.appendChild(aisEl('div', { class: 'ais-row', style: { alignItems: 'flex-start' } },
      aisEl('div', { class: 'ais-grow' }, memory), aisEl('div', { class: 'ais-grow' }, compute)));
    if (r.advice && r.advice.length) {
      estimateBox.appendChild(aisEl('ul', { 'data-testid': 'ais-builder-advice' }, r.advice.map((a) => aisEl('li', {}, a))));
    }
  };

  let estimateTimer = null;
  let estimateSeq = 0;
  const fetchEstimate = async () => {
    const seq = ++estimateSeq;
    const specText = model.get('spec_json');
    if (!specText) {
      aisClear(estimateBox);
      estimateBox.appendChild(aisEl('div', { class: 'ais-muted' }, 'Fix the errors above to see the estimate.'));
      return;
    }
    const body = { model: JSON.parse(specText), batch_size: model.get('batch_size'), precision: model.get('precision'), gpu: model.get('gpu'), epochs: model.get('epochs') };
    const outputs = model.get('outputs');
    if (Number.isInteger(outputs)) body.outputs = outputs;
    if (model.get('dataset_rows')) body.dataset_size = model.get('dataset_rows');
    estimateBox.classList.add('ais-muted');
    try {
      const result = await aisApi('/compute/estimate', { method: 'POST', body });
      if (seq !== estimateSeq) return; // an edit came after this request
      showEstimate(result);
      save({ estimate_result: result });
    } catch (err) {
      if (seq !== estimateSeq) return;
      aisClear(estimateBox);
      estimateBox.appendChild(aisErrorBox(err, fetchEstimate));
    } finally {
      if (seq === estimateSeq) estimateBox.classList.remove('ais-muted');
    }
  };
  const scheduleEstimate = () => {
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(fetchEstimate, 400);
  };
  for (const name of ['spec_json', 'batch_size', 'gpu', 'precision', 'epochs', 'outputs', 'dataset_rows']) on(`change:${name}`, scheduleEstimate);
  disposers.push(() => clearTimeout(estimateTimer));

  /* ---------------------------------------------------------------- export ---------- */
  const specPre = aisEl('pre', { class: 'ais-log', 'data-testid': 'ais-builder-spec' });
  const codePre = aisEl('pre', { class: 'ais-log', 'data-testid': 'ais-builder-code' });
  const showExport = () => {
    specPre.textContent = model.get('spec_json') || 'The spec has errors.';
    codePre.textContent = model.get('python_code') || 'The spec has errors.';
  };
  on('change:spec_json', showExport);
  on('change:python_code', showExport);
  const exportBody = aisEl('div', { style: { display: 'none' } },
    aisEl('div', { class: 'ais-row' }, aisEl('span', { class: 'ais-grow' }, 'Trainer JSON spec'), aisCopyButton(() => model.get('spec_json'), 'ais-builder-copy-spec')), specPre,
    aisEl('div', { class: 'ais-row' }, aisEl('span', { class: 'ais-grow' }, 'PyTorch nn.Module'), aisCopyButton(() => model.get('python_code'), 'ais-builder-copy-code')), codePre);
  const exportToggle = aisEl('button', {
    class: 'ais-btn', type: 'button', 'data-testid': 'ais-builder-export',
    onclick: () => {
      const open = exportBody.style.display === 'none';
      exportBody.style.display = open ? '' : 'none';
      exportToggle.textContent = open ? 'Hide export' : 'Export: JSON spec and PyTorch code';
    },
  }, 'Export: JSON spec and PyTorch code');
  el.appendChild(aisEl('div', { class: 'ais-section' }, exportToggle, exportBody));

  /* ---------------------------------------------------------------- train ----------- */
  const datasetSelect = aisEl('select', { 'data-testid': 'ais-builder-dataset', onchange: () => save({ dataset: datasetSelect.value, target: '' }) });
  const targetSelect = aisEl('select', { 'data-testid': 'ais-builder-target', onchange: () => save({ target: targetSelect.value }) });
  const trainButton = aisEl('button', { class: 'ais-btn', type: 'button', 'data-testid': 'ais-builder-train' }, 'Train');
  const trainStatus = aisEl('span', { class: 'ais-muted', 'data-testid': 'ais-builder-train-status' });
  const datasetError = aisEl('div');
  const fillDatasets = () => {
    aisClear(datasetSelect);
    datasetSelect.appendChild(aisEl('option', { value: '' }, '— dataset —'));
    for (const d of model.get('datasets') || []) datasetSelect.appendChild(aisEl('option', { value: d.id, selected: d.id === model.get('dataset') }, d.name));
  };
  const fillTargets = () => {
    aisClear(targetSelect);
    targetSelect.appendChild(aisEl('option', { value: '' }, '— target column —'));
    for (const c of model.get('columns') || []) {
      targetSelect.appendChild(aisEl('option', { value: c.name, selected: c.name === model.get('target') }, `${c.name} (${c.type})`));
    }
  };
  const reloadDatasets = async () => {
    aisClear(datasetError);
    try {
      const page = await aisApi('/datasets', { params: { limit: 200, sort: 'name' } });
      save({ datasets: (page.items || []).map((d) => ({ id: d.id, name: d.name })) });
    } catch (err) {
      datasetError.appendChild(aisErrorBox(err, reloadDatasets));
    }
  };
  let starting = false; // one job per click: the button waits for the kernel's answer
  const canTrain = () => {
    trainButton.disabled = starting || !model.get('spec_json') || !model.get('dataset') || !model.get('target');
    trainButton.title = !model.get('spec_json') ? 'Fix the errors first' : (!model.get('dataset') || !model.get('target') ? 'Choose a dataset and a target column' : 'Start a training job');
  };
  trainButton.addEventListener('click', () => {
    starting = true;
    canTrain();
    trainStatus.textContent = 'Starting the job…';
    model.send({ op: 'train', epochs: model.get('epochs'), batch_size: model.get('batch_size'), learning_rate: model.get('learning_rate') });
  });
  on('change:datasets', fillDatasets);
  on('change:dataset', () => { fillDatasets(); canTrain(); });
  on('change:columns', fillTargets);
  on('change:target', () => { fillTargets(); canTrain(); });
  on('change:spec_json', canTrain);
  on('change:job_id', () => {
    starting = false;
    canTrain();
    const id = model.get('job_id');
    trainStatus.textContent = id ? `Job ${id} started; its monitor is below.` : '';
  });
  on('change:error', () => {
    if (!model.get('error')) return;
    starting = false;
    canTrain();
    trainStatus.textContent = '';
  });
  el.appendChild(aisEl('div', { class: 'ais-section' },
    aisEl('div', { class: 'ais-title' }, 'Train'),
    aisEl('div', { class: 'ais-row' },
      datasetSelect,
      aisEl('button', { class: 'ais-btn', type: 'button', title: 'Reload the datasets', 'data-testid': 'ais-builder-reload', onclick: reloadDatasets }, '↻'),
      targetSelect, aisEl('label', {}, 'Learning rate ', lrInput), trainButton, trainStatus),
    datasetError));

  fillDatasets();
  fillTargets();
  canTrain();
  renderLayers();
  showExport();
  fetchEstimate();
  return () => { for (const d of disposers) d(); };
}

export default { render: aisMount(aisBuilderRender) };
