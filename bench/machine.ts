import { cpus, hostname, totalmem } from 'node:os';

/** What every bench result records of the machine it ran on. */
export function hostMachine(): {
  host: string;
  cpu: string | undefined;
  cores: number;
  memoryGiB: number;
  node: string;
} {
  return {
    host: hostname(),
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

/** The command that ran this bench, as a user would type it from the project root. */
export function commandLine(): string {
  return `node ${process.argv
    .slice(1)
    .map((a) => a.replace(/^.*\/dist\//, 'dist/'))
    .join(' ')}`;
}
