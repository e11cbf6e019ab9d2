/** The error for a tensor name a checkpoint does not have, shared by the checkpoint readers. */
import { fail } from '../errors.js';

const SHOWN = 5;

/**
 * Throws BAD_ARGUMENT naming the missing tensor and a few that exist, preferring names with the same
 * last component (`…mixer.A_log` when `model.layers.0.mixer.A_log` was asked for), since a wrong
 * prefix is the usual mistake.
 */
export function failUnknownTensor(where: string, name: string, available: Iterable<string>): never {
  const all = [...available];
  const last = name.slice(name.lastIndexOf('.') + 1);
  const similar = all.filter((n) => n === last || n.endsWith(`.${last}`));
  const shown = [...new Set([...similar, ...all])].slice(0, SHOWN);
  const list =
    all.length === 0
      ? 'it has no tensors'
      : `it has ${all.length}, e.g. ${shown.map((n) => `"${n}"`).join(', ')}${all.length > shown.length ? ', …' : ''}`;
  return fail('BAD_ARGUMENT', `no tensor "${name}" in ${where}; ${list}`, {
    file: where,
    tensor: name,
    available: shown,
  });
}
