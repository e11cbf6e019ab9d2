import type { Backend } from '../../src/backend/backend.js';
import type { MatmulOptions } from '../../src/backend/contract/inference.js';
import type { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/**
 * The CPU reference with its q8/q4 products in the Linear layout taken on f32 activations: the weights
 * dequantised to f32 and multiplied by x as it is. This is what the WebGPU kernels
 * compute (their specification: the f32 product of the dequantised weights); the CPU's own q8/q4
 * products round x to int8 per block of 32 (reference/int8-activations.ts). Everything else is the
 * CPU backend's, through the prototype.
 */
export function floatActivationProducts(cpu: CpuBackend): Backend {
  const self = Object.create(cpu) as CpuBackend; // tensors it makes belong to it, so calls run with this = self
  const matmul = (out: Tensor, a: Tensor, b: Tensor, o: MatmulOptions = {}): void => {
    if ((b.dtype === 'q8' || b.dtype === 'q4') && o.transB) {
      // per call (a model's scopes would dispose a kept copy)
      const f = self.upload(self.readSync(b) as Float32Array, b.shape);
      try {
        return cpu.matmul.call(self, out, a, f, o);
      } finally {
        if (!f.disposed) f.dispose();
      }
    }
    return cpu.matmul.call(self, out, a, b, o);
  };
  Object.defineProperty(self, 'matmul', { value: matmul });
  return self;
}
