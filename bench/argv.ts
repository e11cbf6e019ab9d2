/**
 * The small benches' command line: `--name value` options from a known list (flags such as `--check`
 * are read with process.argv.includes). An option outside the list is an error naming the valid ones;
 * `arg(name, fallback)` is the value after `--name`, or the fallback when it is absent.
 */
export function argvOptions(known: readonly string[]): (name: string, fallback: string) => string {
  for (const a of process.argv.slice(2))
    if (a.startsWith('--') && !known.includes(a.slice(2)))
      throw new Error(`unknown option ${a}; options: ${known.map((k) => `--${k}`).join(' ')}`);
  return (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const v = process.argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
    return v;
  };
}
