// `node train-child.mjs OPTIONS_JSON`: train(options) from the built package (dist/), for tests
// that end the process (test/helpers/training-run.ts, runTrainChild). A rejection exits with 1.
import { train } from '../../dist/index.js';

await train(JSON.parse(process.argv[2]));
