import t from 'tap';
import { findPython, firstWithTorch, pythonCandidates } from '../ts/python.js';

t.test('CRACKSEG_PYTHON comes first', async (t) => {
  t.same(pythonCandidates({ CRACKSEG_PYTHON: '/opt/py' }), [
    '/opt/py',
    'python3',
    '/usr/bin/python3',
  ]);
  t.same(pythonCandidates({}), ['python3', '/usr/bin/python3']);
});

t.test('finds an interpreter that imports torch', async (t) => {
  const py = await findPython();
  t.match(py.torchVersion, /^\d+\.\d+/);
});

t.test('a candidate without torch is passed over for the next one', async (t) => {
  const py = await findPython({ PATH: '/nonexistent', CRACKSEG_PYTHON: '/bin/false' });
  t.equal(py.executable, '/usr/bin/python3');
});

t.test('no candidate with torch: the error names each and how to fix it', async (t) => {
  await t.rejects(
    firstWithTorch(['/bin/false', '/nonexistent/python'], { PATH: '/nonexistent' }),
    /Tried:\n {2}\/bin\/false: .*\n {2}\/nonexistent\/python: .*ENOENT[^]*CRACKSEG_PYTHON/,
  );
});
