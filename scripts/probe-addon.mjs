// Exits 0 when the addon (a local build or a prebuild) loads here, else 1 with the reason.
import { existsSync } from 'node:fs';

const loader = new URL('../dist/binding.js', import.meta.url);
if (!existsSync(loader)) process.exit(1); // a source checkout before its first build
const { loadBinding } = await import(loader.href);
try {
  const info = loadBinding().binding.runtimeInfo();
  console.log(`crackseg: using the addon for libtorch ${info.torchVersion} (${info.flavour})`);
} catch (err) {
  console.log(err.message);
  process.exit(1);
}
