import { fail, fmtShape } from '../errors.js';
import { Zamba2HybridLayer } from '../mixers/zamba2-layer.js';
import * as F from '../ops/ops.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { HybridConfig } from './config-hybrid.js';
import { blockScope, LanguageModel } from './lm.js';
import type { ModelState } from './state.js';

/**
 * Zamba2's language model (transformers' Zamba2Model): the generic model's embeddings, blocks, final
 * norm and head, with the shared blocks' calls threaded in. A hybrid layer's shared block reads the
 * residual stream h itself (not its norm) and the embeddings e0, which only the model holds:
 *   e0 = embed(ids);  h = e0
 *   mamba layer:   h = h + mamba(rmsnorm(h))
 *   hybrid layer:  t = linear_i(shared_block(h, e0));  h = h + mamba(rmsnorm(h + t))
 *   logits = lm_head(rmsnorm(h))
 * The blocks are the generic model's (norm = the Mamba decoder's input_layernorm, mixer = Mamba2Mixer
 * or Zamba2HybridLayer), so states, parameters, save and restore are the generic ones.
 */
/** Zamba2's step buffers beside the generic ones (LanguageModel's StepWorkspace), per batch size. */
interface SharedBlockWorkspace {
  e0: Tensor; // (b, d) the token's embedding, kept for the shared blocks
  t: Tensor; // (b, d) a shared block's output
  x: Tensor; // (b, d) h + t
}

export class Zamba2LanguageModel extends LanguageModel<HybridConfig> {
  private readonly sharedWorkspaces = new Map<number, SharedBlockWorkspace>();

  override forward(ids: Tensor, opts: { state?: ModelState; lastOnly?: boolean } = {}): Tensor {
    if (ids.rank !== 2 || ids.dtype !== 'i32')
      fail('SHAPE_MISMATCH', `forward: ids must be (b, l) i32, got ${fmtShape(ids.shape)} ${ids.dtype}`);
    const [b, l] = ids.shape as [number, number];
    if (l === 0) fail('EMPTY_INPUT', 'forward: the sequence is empty (length 0)');
    const st = opts.state;
    if (st) {
      if (st.batch !== b) fail('STATE_MISMATCH', `forward: state has batch ${st.batch}, ids have batch ${b}`);
      if (st.signature !== this.signature)
        fail('STATE_MISMATCH', `forward: state belongs to ${st.signature}, this model is ${this.signature}`);
    }
    return scope(() => {
      const e0 = F.embedding(ids, this.embeddings); // (b, l, d)
      let h = e0;
      this.blocks.forEach((blk, i) => {
        const layer = st?.layers[i];
        // e0 is read by every shared block: the first block keeps it
        h = blockScope(
          h,
          (r) => {
            let x = r;
            if (blk.mixer instanceof Zamba2HybridLayer) x = F.add(r, blk.mixer.shared(r, e0, layer, st?.position));
            return F.add(r, blk.mixer.forward(F.rmsnorm(x, blk.norm, this.eps), layer, st?.position)); // (b, l, d)
          },
          h === e0,
        );
      });
      if (st) st.position += l;
      const normed = F.rmsnorm(h, this.normF, this.eps); // (b, l, d)
      if (!opts.lastOnly) return F.linear(normed, this.lmHead); // (b, l, V)
      return F.linear(this.lastRows(normed, b, l), this.lmHead); // (b, V)
    });
  }

  override step(ids: Tensor, state: ModelState): Tensor {
    const b = ids.size;
    if (state.batch !== b) fail('STATE_MISMATCH', `step: state has batch ${state.batch}, got ${b} ids`);
    const ws = this.workspace(b);
    const sw = this.sharedWorkspace(b);
    const bk = this.backend;
    bk.embedding(ws.residual, ids, this.embeddings);
    bk.copy(sw.e0, ws.residual);
    let pending = false; // ws.hidden holds a block's output not yet added into the residual
    this.blocks.forEach((blk, i) => {
      const st = state.layers[i];
      if (blk.mixer instanceof Zamba2HybridLayer) {
        if (pending) bk.binary('add', ws.residual, ws.residual, ws.hidden);
        blk.mixer.sharedStep(ws.residual, sw.e0, sw.t, st, state.stepPosition);
        // normed = rmsnorm(h + t), leaving h as it is
        bk.copy(sw.x, ws.residual);
        bk.addRmsnorm(ws.normed, sw.x, sw.t, blk.norm, this.eps);
      } else {
        bk.addRmsnorm(ws.normed, ws.residual, pending ? ws.hidden : null, blk.norm, this.eps);
      }
      blk.mixer.step(ws.normed, ws.hidden, st, state.stepPosition);
      pending = true;
    });
    bk.addRmsnorm(ws.normed, ws.residual, pending ? ws.hidden : null, this.normF, this.eps);
    bk.matmul(ws.logits, ws.normed, this.lmHead, { transB: true });
    state.advance();
    return ws.logits;
  }

  private sharedWorkspace(b: number): SharedBlockWorkspace {
    let ws = this.sharedWorkspaces.get(b);
    if (!ws) {
      const bk = this.backend;
      const d = this.dModel;
      ws = { e0: bk.alloc([b, d]).keep(), t: bk.alloc([b, d]).keep(), x: bk.alloc([b, d]).keep() };
      this.sharedWorkspaces.set(b, ws);
    }
    return ws;
  }
}
