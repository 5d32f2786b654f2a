import { datasetSnippet, formatBytes } from '../studio';
import { datasetName } from '../upload';

test('the snippet quotes the name as a Python string literal', () => {
  expect(datasetSnippet('iris')).toBe('ais.datasets.get("iris")');
  // a quote or a backslash in a name cannot break out of the string
  expect(datasetSnippet('a"b\\c')).toBe('ais.datasets.get("a\\"b\\\\c")');
});

test('an uploaded file gets a dataset name the server accepts', () => {
  // the server's Name: no control characters, no / or \\, no surrounding whitespace
  const valid = /^[^\s/\\\u0000-\u001f\u007f](?:[^/\\\u0000-\u001f\u007f]*[^\s/\\\u0000-\u001f\u007f])?$/;
  for (const [file, name] of [
    ['iris.csv', 'iris'],
    ['my data (v2).parquet', 'my data (v2)'],
    ['../../etc/passwd', '..-..-etc-passwd'],
    ['.hidden.csv', '.hidden'],
    ['データ.csv', 'データ'],
    ['tab\there.csv', 'tab-here'],
    [' padded .csv', 'padded'],
    ['.csv', 'dataset'],
    ['x'.repeat(300) + '.csv', 'x'.repeat(128)]
  ]) {
    expect(datasetName(file)).toBe(name);
    expect(datasetName(file)).toMatch(valid);
  }
});

test('bytes are shown in binary units', () => {
  expect(formatBytes(99)).toBe('99 B');
  expect(formatBytes(50 * 1024 ** 3)).toBe('50 GB');
  expect(formatBytes(1536)).toBe('1.5 KB');
  expect(formatBytes(undefined)).toBe('–');
});
