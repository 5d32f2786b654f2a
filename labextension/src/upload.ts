/**
 * Dataset uploads through tus (`{base}aistudio/api/uploads`, tus-js-client): resumable, with
 * progress, pause (abort the request; the server keeps the offset) and resume (HEAD, then PATCH
 * from the acknowledged offset).
 */
import { ServerConnection } from '@jupyterlab/services';
import { Upload } from 'tus-js-client';

import { API_PATH } from './api';

/** A dataset name the server accepts (free text without control characters, path separators or
 * surrounding whitespace; at most 128 characters), from a file name. */
export function datasetName(filename: string): string {
  const stem = filename.replace(/\.[A-Za-z0-9]+$/, '');
  // eslint-disable-next-line no-control-regex
  const cleaned = stem.replace(/[\u0000-\u001f\u007f/\\]+/g, '-').slice(0, 128).trim();
  return cleaned || 'dataset';
}

function cookie(name: string): string | null {
  const match = typeof document !== 'undefined' ? document.cookie.match(`\\b${name}=([^;]*)\\b`) : null;
  return match ? decodeURIComponent(match[1]) : null;
}

/** The headers ServerConnection would send: Jupyter checks XSRF on cookie-authenticated PATCH/POST. */
export function authHeaders(settings: ServerConnection.ISettings): Record<string, string> {
  const headers: Record<string, string> = {};
  const xsrf = cookie('_xsrf');
  if (xsrf) {
    headers['X-XSRFToken'] = xsrf;
  }
  if (settings.token) {
    headers['Authorization'] = `token ${settings.token}`;
  }
  return headers;
}

export interface IUploadCallbacks {
  onProgress(sent: number, total: number): void;
  /** The upload's id, once the server created it (its `upload:<id>` topic is then readable). */
  onId(id: string): void;
  onSuccess(): void;
  onError(message: string): void;
}

export function startUpload(settings: ServerConnection.ISettings, file: File, callbacks: IUploadCallbacks): Upload {
  const base = settings.baseUrl.endsWith('/') ? settings.baseUrl : `${settings.baseUrl}/`;
  const upload = new Upload(file, {
    endpoint: `${base}${API_PATH}/uploads`,
    headers: authHeaders(settings),
    metadata: {
      filename: file.name,
      filetype: file.type || 'application/octet-stream',
      name: datasetName(file.name)
    },
    // PATCH in 8 MiB requests: pause loses at most one request's bytes
    chunkSize: 8 * 1024 * 1024,
    retryDelays: [0, 1000, 3000, 5000],
    removeFingerprintOnSuccess: true,
    onUploadUrlAvailable: () => {
      const id = (upload.url ?? '').split('/').pop();
      if (id) {
        callbacks.onId(id);
      }
    },
    onProgress: (sent, total) => callbacks.onProgress(sent, total),
    onSuccess: () => callbacks.onSuccess(),
    onError: error => {
      // tus-js-client's DetailedError carries the response: prefer the server's envelope
      const body = (error as any)?.originalResponse?.getBody?.();
      let message = error.message;
      try {
        const parsed = body ? JSON.parse(body) : null;
        if (parsed?.error?.message) {
          message = parsed.error.message;
        }
      } catch {
        // not JSON: keep tus-js-client's own message
      }
      callbacks.onError(message);
    }
  });
  upload.start();
  return upload;
}
