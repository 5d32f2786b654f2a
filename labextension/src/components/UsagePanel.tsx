import React from 'react';

import { useLoad } from '../hooks';
import { formatBytes, IStudio } from '../studio';

function Meter(props: { label: string; used: number; limit: number; text: string; testid: string }): JSX.Element {
  const fraction = props.limit > 0 ? Math.min(1, props.used / props.limit) : 0;
  return (
    <div className="ais-meter" data-testid={props.testid}>
      <div className="ais-meter-label">
        <span>{props.label}</span>
        <span>{props.text}</span>
      </div>
      <div className="ais-meter-track">
        <div className={`ais-meter-fill${fraction >= 0.9 ? ' ais-meter-high' : ''}`} style={{ width: `${(fraction * 100).toFixed(1)}%` }} />
      </div>
    </div>
  );
}

/** `/me`: the tier's quotas and this month's usage. */
export function UsagePanel(props: { studio: IStudio }): JSX.Element {
  const me = useLoad(() => props.studio.api.me(), [], props.studio.settings.refreshInterval);
  if (!me.data) {
    return <div className="ais-empty">Loading…</div>;
  }
  const { quotas, usage } = me.data;
  const gpuHours = (usage.gpu_seconds + (usage.gpu_seconds_running ?? 0)) / 3600;
  const price = usage.price_per_gpu_hour ?? 0;
  return (
    <div className="ais-panel-body" data-testid="ais-usage">
      <div className="ais-row-meta">
        {me.data.display_name || me.data.username} · tier <b data-testid="ais-usage-tier">{me.data.tier}</b> · {usage.period}
      </div>
      <Meter
        label="Storage"
        testid="ais-usage-storage"
        used={usage.storage_bytes}
        limit={quotas.storage_bytes}
        text={`${formatBytes(usage.storage_bytes)} of ${formatBytes(quotas.storage_bytes)}`}
      />
      <Meter
        label="GPU-hours"
        testid="ais-usage-gpu"
        used={gpuHours}
        limit={quotas.gpu_hours_per_month}
        text={`${gpuHours.toFixed(2)} of ${quotas.gpu_hours_per_month}`}
      />
      <Meter
        label="Active jobs"
        testid="ais-usage-jobs"
        used={usage.active_jobs}
        limit={quotas.concurrent_jobs}
        text={`${usage.active_jobs} of ${quotas.concurrent_jobs}`}
      />
      <div className="ais-row-meta" data-testid="ais-usage-cost">
        Cost this month: {usage.cost.toFixed(2)}
        {price > 0 ? ` (budget ${(quotas.gpu_hours_per_month * price).toFixed(2)})` : ''}
      </div>
    </div>
  );
}
