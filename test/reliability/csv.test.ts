/**
 * CSV formula injection (issue 15, item 14): a text cell that a spreadsheet would run as a formula
 * is written prefixed with `'` and quoted (OWASP, "CSV Injection"); numbers stay numbers.
 */
import t from 'tap';
import { csvField, csvLine } from '../../ts/report/csv.js';

t.test('text cells starting like a formula are neutralised, others unchanged', async (t) => {
  const table: Array<[value: string | number, written: string]> = [
    ['=HYPERLINK("http://x","y")', `"'=HYPERLINK(""http://x"",""y"")"`],
    ['+1+1', `"'+1+1"`],
    ['-2+3', `"'-2+3"`],
    ['@SUM(A1:A2)', `"'@SUM(A1:A2)"`],
    ['\t=1', `"'\t=1"`],
    ['\r=1', `"'\r=1"`],
    ['-crack_01.png', `"'-crack_01.png"`],
    ['=a,b', `"'=a,b"`],
    // Not at the start, or not a trigger: written as before.
    ['crack=1', 'crack=1'],
    ['data/a-b.png', 'data/a-b.png'],
    ["'quoted", "'quoted"],
    [' =1', '" =1"'],
    // Numbers are numbers, whatever their sign.
    [-0.5, '-0.5'],
    [-3, '-3'],
    [1e-7, '1e-7'],
  ];
  for (const [value, written] of table) {
    t.equal(csvField(value), written, JSON.stringify(value));
  }
});

t.test('a row keeps its columns: neutralised text beside negative numbers', async (t) => {
  t.equal(csvLine(['=cmd|calc', -0.25, 'ok']), `"'=cmd|calc",-0.25,ok\n`);
});
