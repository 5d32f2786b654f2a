/** The example body the test-predict form starts from, built from a deployment's input schema. */
import type { InputSchema } from './types';

const NUMERIC = /^(float|int|uint|double|half|bfloat)/;

function zero(dtype: string): number | string | boolean {
  if (dtype === 'bool') {
    return false;
  }
  return NUMERIC.test(dtype) ? 0 : '';
}

/** One row the schema accepts: zeros for numbers, "" for strings, false for booleans. */
export function predictExample(schema: InputSchema | null | undefined): Record<string, unknown> {
  if (schema && schema.kind === 'records' && Array.isArray(schema.features)) {
    const record: Record<string, unknown> = {};
    for (const feature of schema.features) {
      record[feature.name] = zero(String(feature.dtype ?? ''));
    }
    return { records: [record] };
  }
  if (schema && schema.kind === 'tensor' && Array.isArray(schema.shape)) {
    // the batch axis (null) is the one row; unknown inner sizes become 1
    const inner = schema.shape.slice(1).map(d => (typeof d === 'number' && d > 0 ? d : 1));
    const build = (dims: number[]): unknown => (dims.length === 0 ? 0 : Array.from({ length: dims[0] }, () => build(dims.slice(1))));
    return { inputs: [build(inner)] };
  }
  // no schema (an old version): the records form, to be filled in
  return { records: [{}] };
}
