/** The main-area tab of a version comparison. */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import React from 'react';

import type { ApiClient } from './api';
import { CompareView } from './components/CompareView';

export function compareWidget(api: ApiClient, modelId: string, versions: number[], modelName?: string): MainAreaWidget {
  const content = ReactWidget.create(<CompareView api={api} modelId={modelId} modelName={modelName} versions={versions} />);
  // the sidebar's classes: the same theme variables, badges and errors
  content.addClass('ais-root');
  content.addClass('ais-compare-root');
  const widget = new MainAreaWidget({ content });
  widget.title.label = `Compare ${modelName ?? modelId} ${versions.map(v => `v${v}`).join(', ')}`;
  widget.title.caption = `${modelName ?? modelId}: versions ${versions.join(', ')} side by side`;
  widget.title.closable = true;
  return widget;
}
