/** Opens a `torch.save` checkpoint on the local disk (Node only): positional reads through one FileHandle. */
import { openTorchCheckpoint, type TorchCheckpoint } from '../torch-checkpoint.js';
import { openFileSource } from './file-source.js';

export async function openTorchCheckpointFile(path: string): Promise<TorchCheckpoint> {
  return openTorchCheckpoint(await openFileSource(path));
}
