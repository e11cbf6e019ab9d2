/**
 * A restricted unpickler for the `data.pkl` record of a `torch.save` zip checkpoint. It interprets
 * the pickle opcodes a state dict uses and builds plain values (dicts, lists, tuples, numbers,
 * strings) plus descriptions of torch storages and tensor views. It never runs code: a global is
 * only ever a name, looked up in a fixed allow-list of what torch.save writes for tensors and
 * containers; any other global (`os.system`, `builtins.eval`, a model class) stops the load.
 * Browser-safe.
 *
 * Sources: CPython Lib/pickle.py and Lib/pickletools.py (opcodes, protocols 2-5); torch/serialization.py
 * `_save` (persistent ids `('storage', storage_type, key, location, numel)`, protocol 2 by default);
 * torch/_utils.py (`_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata])` and friends); torch/_weights_only_unpickler.py (torch's own allow-list).
 */
import { fail } from '../errors.js';

// ---- values -----------------------------------------------------------------------------------

/** A Python float (kept apart from ints, so a size or stride that is a float is caught). */
export class PyFloat {
  constructor(readonly value: number) {}
}

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

export class PyList {
  readonly items: PyValue[] = [];
}

/** A Python set or frozenset, kept as its items in stream order. */
export class PySet {
  readonly items: PyValue[] = [];
}

/** Dict keys this unpickler accepts: Python's hashable scalars. */
export type PyKey = string | number | bigint | boolean | null;

export class PyDict {
  readonly items = new Map<PyKey, PyValue>();
  /** Instance attributes set by BUILD, e.g. the `_metadata` torch attaches to a state dict. */
  attributes: PyValue = null;
  constructor(readonly ordered: boolean) {}
}

/** Torch dtype names, e.g. `float32`, `bfloat16`, `uint8` (`torch.float32` in Python). */
export type TorchDTypeName = string;

type GlobalKind =
  | { readonly kind: 'ordered-dict' }
  | { readonly kind: 'set' }
  | { readonly kind: 'bytes' }
  | { readonly kind: 'codecs-encode' }
  | { readonly kind: 'rebuild'; readonly fn: RebuildFn }
  | { readonly kind: 'tensor-type' }
  | { readonly kind: 'storage-type'; readonly dtype: TorchDTypeName }
  | { readonly kind: 'dtype'; readonly dtype: TorchDTypeName };

type RebuildFn =
  | '_rebuild_tensor'
  | '_rebuild_tensor_v2'
  | '_rebuild_tensor_v3'
  | '_rebuild_parameter'
  | '_rebuild_parameter_with_state'
  | '_rebuild_from_type_v2';

/** An allow-listed global: only its name and what it stands for, never code. */
export class TorchGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly what: GlobalKind,
  ) {}
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A storage record `data/<key>` of the archive, as a persistent id names it. */
export class TorchStorage {
  constructor(
    readonly key: string,
    /** e.g. `FloatStorage`, `UntypedStorage`. */
    readonly storageType: string,
    /** Element type of the storage (`uint8` for an untyped storage: its elements are bytes). */
    readonly dtype: TorchDTypeName,
    /** Device it was saved from, e.g. `cpu`, `cuda:0`. */
    readonly location: string,
    /** Elements of `dtype` in the storage. */
    readonly numel: number,
  ) {}
}

/** A tensor: a strided view of a storage, in elements of `dtype`. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly dtype: TorchDTypeName,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyFloat
  | PyTuple
  | PyList
  | PySet
  | PyDict
  | TorchGlobal
  | TorchStorage
  | TorchTensor;

// ---- the allow-list ---------------------------------------------------------------------------

/** Legacy typed storage classes (`torch.FloatStorage`, …) and the dtype of their elements. */
const STORAGE_TYPES: Readonly<Record<string, TorchDTypeName>> = {
  DoubleStorage: 'float64',
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  ComplexFloatStorage: 'complex64',
  ComplexDoubleStorage: 'complex128',
  QInt8Storage: 'qint8',
  QUInt8Storage: 'quint8',
  QInt32Storage: 'qint32',
  QUInt4x2Storage: 'quint4x2',
  QUInt2x4Storage: 'quint2x4',
};

/** Every dtype torch can pickle as a global `torch.<name>` (dtype's `__reduce__` returns its name). */
const TORCH_DTYPES = new Set<string>([
  'float64',
  'float32',
  'float16',
  'bfloat16',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
  'complex32',
  'complex64',
  'complex128',
  'qint8',
  'quint8',
  'qint32',
  'quint4x2',
  'quint2x4',
  'uint16',
  'uint32',
  'uint64',
  'bits1x8',
  'bits2x4',
  'bits4x2',
  'bits8',
  'bits16',
  'float8_e5m2',
  'float8_e4m3fn',
  'float8_e5m2fnuz',
  'float8_e4m3fnuz',
  'float8_e8m0fnu',
  'float4_e2m1fn_x2',
  'uint1',
  'uint2',
  'uint3',
  'uint4',
  'uint5',
  'uint6',
  'uint7',
  'int1',
  'int2',
  'int3',
  'int4',
  'int5',
  'int6',
  'int7',
]);

const REBUILD_FNS: readonly RebuildFn[] = [
  '_rebuild_tensor',
  '_rebuild_tensor_v2',
  '_rebuild_tensor_v3',
  '_rebuild_parameter',
  '_rebuild_parameter_with_state',
];

/** The global named `module.name` if torch.save writes it for tensors or plain containers, else undefined. */
function allowedGlobal(module: string, name: string): TorchGlobal | undefined {
  const g = (what: GlobalKind) => new TorchGlobal(module, name, what);
  if (module === 'collections' && name === 'OrderedDict') return g({ kind: 'ordered-dict' });
  // Protocol 2 has no opcodes for bytes and sets: it writes bytes as _codecs.encode(text, 'latin1')
  // (empty bytes as builtins.bytes()) and sets as builtins.set([items]), as Lib/pickle.py save_bytes/save_set do.
  if (module === '_codecs' && name === 'encode') return g({ kind: 'codecs-encode' });
  if (module === 'builtins' && name === 'bytes') return g({ kind: 'bytes' });
  if (module === 'builtins' && (name === 'set' || name === 'frozenset')) return g({ kind: 'set' });
  if (module === 'torch._utils' && (REBUILD_FNS as readonly string[]).includes(name))
    return g({ kind: 'rebuild', fn: name as RebuildFn });
  // Tensors carrying Python attributes (e.g. `_no_weight_decay`) pickle as _rebuild_from_type_v2(fn, type, args, state).
  if (module === 'torch._tensor' && name === '_rebuild_from_type_v2')
    return g({ kind: 'rebuild', fn: '_rebuild_from_type_v2' });
  if ((module === 'torch' && name === 'Tensor') || (module === 'torch.nn.parameter' && name === 'Parameter'))
    return g({ kind: 'tensor-type' });
  if (module === 'torch' && Object.hasOwn(STORAGE_TYPES, name))
    return g({ kind: 'storage-type', dtype: STORAGE_TYPES[name] });
  // UntypedStorage is defined in torch/storage.py and re-exported as torch.UntypedStorage.
  if ((module === 'torch' || module === 'torch.storage') && name === 'UntypedStorage')
    return g({ kind: 'storage-type', dtype: 'uint8' });
  if (module === 'torch' && TORCH_DTYPES.has(name)) return g({ kind: 'dtype', dtype: name });
  return undefined;
}

/** Python 2 module names that protocol-2 pickles use (CPython Lib/_compat_pickle.py), for messages. */
const PY2_MODULES: Readonly<Record<string, string>> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

// ---- opcodes ----------------------------------------------------------------------------------

/** Every opcode of pickle protocols 0-5 by byte, for messages (CPython Lib/pickle.py). */
const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

const HIGHEST_PROTOCOL = 5;

// ---- budgets ----------------------------------------------------------------------------------
// A pickle is untrusted input; these bound the unpickler's memory and time whatever the stream says.
// A state dict's pickle holds ~20 opcodes, a few memo entries and ~10 stack values per tensor, and
// pickle batches container items by 1000, so a 70B model (a few thousand tensors) stays far below.

/** Opcodes interpreted. */
export const MAX_PICKLE_OPCODES = 1 << 26;
/** Memo entries (PUT, BINPUT, MEMOIZE). */
export const MAX_PICKLE_MEMO = 1 << 20;
/** Values on the stack, and open MARKs. */
export const MAX_PICKLE_STACK = 1 << 20;
/** Bytes of one string or bytes value (tensor names are short; bytes hold small extra state). */
export const MAX_PICKLE_STRING_BYTES = 64 * 1024 * 1024;
/** Bytes of one LONG4 integer (LONG1's are at most 255): building a huge one is quadratic; sizes fit in 8. */
export const MAX_PICKLE_LONG_BYTES = 1024;

// ---- the unpickler ----------------------------------------------------------------------------

export interface PickleOrigin {
  /** The checkpoint (a path), for messages. */
  readonly file: string;
  /** The record inside it, e.g. `archive/data.pkl`. */
  readonly member: string;
}

/**
 * Interprets `data` (a whole pickle stream) and returns the object it describes. Throws MambaError:
 * UNSUPPORTED for a global outside the allow-list (before anything else happens to it) or a pickle
 * feature torch.save does not use; CORRUPT_FILE for an unknown opcode, a truncated stream or a
 * malformed structure, naming the byte offset.
 */
export function unpickleTorch(data: Uint8Array, origin: PickleOrigin): PyValue {
  return new Unpickler(data, origin).load();
}

class Unpickler {
  private readonly view: DataView;
  private pos = 0;
  /** Where the opcode being interpreted starts, for messages. */
  private at = 0;
  private stack: PyValue[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PyValue>();
  private readonly storages = new Map<string, TorchStorage>();
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private readonly data: Uint8Array,
    private readonly origin: PickleOrigin,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  load(): PyValue {
    for (let ops = 0; ; ops++) {
      if (this.pos >= this.data.length) this.corrupt(`it ends at byte ${this.pos} without a STOP opcode (truncated)`);
      if (ops >= MAX_PICKLE_OPCODES) this.overBudget(`more than ${MAX_PICKLE_OPCODES} opcodes`);
      this.at = this.pos;
      const op = this.data[this.pos++];
      switch (op) {
        case 0x80: {
          // PROTO
          const proto = this.u8();
          if (proto > HIGHEST_PROTOCOL)
            this.unsupported(`pickle protocol ${proto} (the highest known is ${HIGHEST_PROTOCOL})`);
          break;
        }
        case 0x95: // FRAME: a length hint for buffered readers; the whole stream is in memory already
          this.take(8);
          break;
        case 0x2e: {
          // STOP
          if (this.marks.length > 0 || this.stack.length !== 1) {
            this.corrupt(
              `STOP leaves ${this.stack.length} values and ${this.marks.length} marks on the stack, expected one value`,
            );
          }
          return this.stack[0];
        }
        case 0x28: // MARK
          if (this.marks.length >= MAX_PICKLE_STACK) this.overBudget(`more than ${MAX_PICKLE_STACK} open MARKs`);
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;

        // constants and scalars
        case 0x4e:
          this.push(null);
          break; // NONE
        case 0x88:
          this.push(true);
          break; // NEWTRUE
        case 0x89:
          this.push(false);
          break; // NEWFALSE
        case 0x4a:
          this.push(this.view.getInt32(this.take(4), true));
          break; // BININT
        case 0x4b:
          this.push(this.u8());
          break; // BININT1
        case 0x4d:
          this.push(this.view.getUint16(this.take(2), true));
          break; // BININT2
        case 0x8a:
          this.push(this.long(this.u8()));
          break; // LONG1
        case 0x8b:
          this.push(this.long(this.length(this.view.getInt32(this.take(4), true))));
          break; // LONG4
        case 0x47:
          this.push(new PyFloat(this.view.getFloat64(this.take(8), false)));
          break; // BINFLOAT (big-endian)

        // strings and bytes
        case 0x58:
          this.push(this.text(this.length(this.view.getUint32(this.take(4), true))));
          break; // BINUNICODE
        case 0x8c:
          this.push(this.text(this.u8()));
          break; // SHORT_BINUNICODE
        case 0x8d:
          this.push(this.text(this.u64Length()));
          break; // BINUNICODE8
        // Python 2 str: torch.load decodes it as utf-8 (its default `encoding`).
        case 0x54:
          this.push(this.text(this.length(this.view.getInt32(this.take(4), true))));
          break; // BINSTRING
        case 0x55:
          this.push(this.text(this.u8()));
          break; // SHORT_BINSTRING
        case 0x42:
          this.push(this.bytes(this.length(this.view.getUint32(this.take(4), true))));
          break; // BINBYTES
        case 0x43:
          this.push(this.bytes(this.u8()));
          break; // SHORT_BINBYTES
        case 0x8e:
          this.push(this.bytes(this.u64Length()));
          break; // BINBYTES8

        // containers
        case 0x29:
          this.push(new PyTuple([]));
          break; // EMPTY_TUPLE
        case 0x74:
          this.push(new PyTuple(this.popMark()));
          break; // TUPLE
        case 0x85:
          this.push(new PyTuple(this.popN(1)));
          break; // TUPLE1
        case 0x86:
          this.push(new PyTuple(this.popN(2)));
          break; // TUPLE2
        case 0x87:
          this.push(new PyTuple(this.popN(3)));
          break; // TUPLE3
        case 0x5d:
          this.push(new PyList());
          break; // EMPTY_LIST
        case 0x6c: {
          // LIST
          const list = new PyList();
          for (const v of this.popMark()) list.items.push(v); // no spread: a huge MARK run would overflow the call stack
          this.push(list);
          break;
        }
        case 0x8f:
          this.push(new PySet());
          break; // EMPTY_SET
        case 0x90: {
          // ADDITEMS
          const values = this.popMark();
          const set = this.top();
          if (!(set instanceof PySet)) this.corrupt(`ADDITEMS onto ${describe(set)}, not a set`);
          for (const v of values) set.items.push(v);
          break;
        }
        case 0x91: {
          // FROZENSET
          const set = new PySet();
          for (const v of this.popMark()) set.items.push(v);
          this.push(set);
          break;
        }
        case 0x7d:
          this.push(new PyDict(false));
          break; // EMPTY_DICT
        case 0x64: {
          // DICT
          const dict = new PyDict(false);
          this.setItems(dict, this.popMark());
          this.push(dict);
          break;
        }
        case 0x61: {
          // APPEND
          const value = this.pop();
          this.listOnTop('APPEND').items.push(value);
          break;
        }
        case 0x65: {
          // APPENDS
          const values = this.popMark();
          const list = this.listOnTop('APPENDS');
          for (const v of values) list.items.push(v);
          break;
        }
        case 0x73: {
          // SETITEM
          const [key, value] = this.popN(2) as [PyValue, PyValue];
          this.setItems(this.dictOnTop('SETITEM'), [key, value]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const kv = this.popMark();
          this.setItems(this.dictOnTop('SETITEMS'), kv);
          break;
        }

        // memo
        case 0x71:
          this.memoPut(this.u8());
          break; // BINPUT
        case 0x72:
          this.memoPut(this.view.getUint32(this.take(4), true));
          break; // LONG_BINPUT
        case 0x94:
          this.memoPut(this.memo.size);
          break; // MEMOIZE
        case 0x68:
          this.push(this.memoGet(this.u8()));
          break; // BINGET
        case 0x6a:
          this.push(this.memoGet(this.view.getUint32(this.take(4), true)));
          break; // LONG_BINGET

        // globals and object construction: only allow-listed names, interpreted, never called
        case 0x63: {
          // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.global(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const [module, name] = this.popN(2);
          if (typeof module !== 'string' || typeof name !== 'string') {
            this.corrupt(`STACK_GLOBAL needs two strings, got ${describe(module)} and ${describe(name)}`);
          }
          this.push(this.global(module, name));
          break;
        }
        case 0x69: {
          // INST: module and name inline, arguments since the mark
          const g = this.global(this.line(), this.line());
          this.push(this.call(g, this.popMark()));
          break;
        }
        case 0x6f: {
          // OBJ: class and arguments since the mark
          const [cls, ...args] = this.popMark();
          if (cls === undefined) this.corrupt('OBJ without a class');
          this.push(this.call(cls, args));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop();
          const fn = this.pop();
          if (!(args instanceof PyTuple)) this.corrupt(`REDUCE needs an argument tuple, got ${describe(args)}`);
          this.push(this.call(fn, args.items));
          break;
        }
        case 0x81: {
          // NEWOBJ
          this.pop(); // cls.__new__(cls, *args): the arguments do not matter for the classes allowed here
          this.push(this.newObject(this.pop()));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          this.popN(2);
          this.push(this.newObject(this.pop()));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.pop();
          this.build(this.top(), state);
          break;
        }
        case 0x51: // BINPERSID
          this.push(this.persistentLoad(this.pop()));
          break;

        default: {
          const name = OPCODE_NAMES[op];
          if (name === undefined) this.corrupt(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
          this.unsupported(
            `pickle opcode ${name} (0x${op.toString(16)}), which torch.save does not write for a state dict`,
          );
        }
      }
    }
  }

  // ---- torch semantics ----

  private global(rawModule: string, name: string): TorchGlobal {
    const module = PY2_MODULES[rawModule] ?? rawModule;
    const g = allowedGlobal(module, name);
    if (!g) {
      const file = this.origin.file;
      fail(
        'UNSUPPORTED',
        `refusing to load ${module}.${name} from ${file}: pytorch_model.bin may only contain tensors and plain containers`,
        {
          file,
          member: this.origin.member,
          global: `${module}.${name}`,
          offset: this.at,
        },
      );
    }
    return g;
  }

  /** What calling an allow-listed global computes: REDUCE, INST and OBJ land here. */
  private call(fn: PyValue, args: readonly PyValue[]): PyValue {
    if (!(fn instanceof TorchGlobal)) this.corrupt(`a call applies ${describe(fn)}, which is not a global`);
    const what = fn.what;
    if (what.kind === 'ordered-dict') {
      const dict = new PyDict(true);
      if (args.length === 1 && (args[0] instanceof PyList || args[0] instanceof PyTuple)) {
        // OrderedDict([(key, value), ...])
        for (const pair of args[0].items) {
          const kv = pair instanceof PyTuple || pair instanceof PyList ? pair.items : [];
          if (kv.length !== 2) this.corrupt(`OrderedDict(...) needs (key, value) pairs, got ${describe(pair)}`);
          this.setItems(dict, kv);
        }
      } else if (args.length !== 0) {
        this.unsupported(`collections.OrderedDict called with ${args.length} arguments`);
      }
      return dict;
    }
    if (what.kind === 'codecs-encode') {
      // _codecs.encode(text, 'latin1'): each character is one byte.
      const [text, encoding] = args;
      if (args.length !== 2 || typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
        this.unsupported(`_codecs.encode with arguments other than (text, 'latin1')`);
      }
      const out = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c > 0xff) this.corrupt(`_codecs.encode(..., 'latin1') of a character beyond latin-1`);
        out[i] = c;
      }
      return out;
    }
    if (what.kind === 'bytes') {
      if (args.length !== 0) this.unsupported(`builtins.bytes called with ${args.length} arguments`);
      return new Uint8Array(0);
    }
    if (what.kind === 'set') {
      const set = new PySet();
      const [items] = args;
      if (args.length === 1 && (items instanceof PyList || items instanceof PyTuple)) {
        for (const v of items.items) set.items.push(v);
      } else if (args.length !== 0) this.unsupported(`${fn.fullName} called with ${describe(items)}`);
      return set;
    }
    if (what.kind !== 'rebuild') this.unsupported(`calling ${fn.fullName}(...), which torch.save does not write`);
    return this.rebuild(what.fn, args);
  }

  private rebuild(fn: RebuildFn, args: readonly PyValue[]): TorchTensor {
    const arity = (min: number, max: number) => {
      if (args.length < min || args.length > max) {
        this.corrupt(
          `torch._utils.${fn} takes ${min === max ? min : `${min} to ${max}`} arguments, got ${args.length}`,
        );
      }
    };
    switch (fn) {
      case '_rebuild_tensor': // (storage, storage_offset, size, stride)
        arity(4, 4);
        return this.tensor(fn, args);
      case '_rebuild_tensor_v2': // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        arity(6, 7);
        return this.tensor(fn, args);
      case '_rebuild_tensor_v3': {
        // (..., backward_hooks, dtype[, metadata]): an untyped storage viewed as `dtype`
        arity(7, 8);
        const dtype = args[6];
        if (!(dtype instanceof TorchGlobal) || dtype.what.kind !== 'dtype')
          this.corrupt(`${fn} needs a torch dtype, got ${describe(dtype)}`);
        return this.tensor(fn, args, dtype.what.dtype);
      }
      case '_rebuild_parameter': // (data, requires_grad, backward_hooks)
      case '_rebuild_parameter_with_state': {
        // (data, requires_grad, backward_hooks, state): a Parameter is its data here
        arity(fn === '_rebuild_parameter' ? 3 : 4, fn === '_rebuild_parameter' ? 3 : 4);
        const data = args[0];
        if (!(data instanceof TorchTensor)) this.corrupt(`${fn} needs a tensor, got ${describe(data)}`);
        return data;
      }
      case '_rebuild_from_type_v2': {
        // (func, new_type, args, state): func(*args), retyped, with Python attributes
        arity(4, 4);
        const [inner, newType, innerArgs] = args as [PyValue, PyValue, PyValue];
        if (!(newType instanceof TorchGlobal) || newType.what.kind !== 'tensor-type') {
          this.unsupported(`tensor subclass ${describe(newType)} in _rebuild_from_type_v2`);
        }
        if (
          !(inner instanceof TorchGlobal) ||
          inner.what.kind !== 'rebuild' ||
          inner.what.fn === '_rebuild_from_type_v2'
        ) {
          this.corrupt(`_rebuild_from_type_v2 needs a tensor rebuild function, got ${describe(inner)}`);
        }
        if (!(innerArgs instanceof PyTuple))
          this.corrupt(`_rebuild_from_type_v2 needs an argument tuple, got ${describe(innerArgs)}`);
        return this.rebuild(inner.what.fn, innerArgs.items);
      }
    }
  }

  private tensor(fn: RebuildFn, args: readonly PyValue[], viewDType?: TorchDTypeName): TorchTensor {
    const [storage, offset, size, stride] = args as [PyValue, PyValue, PyValue, PyValue];
    if (!(storage instanceof TorchStorage)) this.corrupt(`${fn} needs a storage, got ${describe(storage)}`);
    if (!isIndex(offset)) this.corrupt(`${fn} needs a non-negative integer storage offset, got ${describe(offset)}`);
    const shape = this.indexTuple(fn, 'size', size);
    const strides = this.indexTuple(fn, 'stride', stride);
    if (strides.length !== shape.length) {
      this.corrupt(`${fn} got size (${shape.join(', ')}) and stride (${strides.join(', ')}) of different lengths`);
    }
    // backward_hooks (args[5]) is an empty OrderedDict in any state dict; hooks are Python code and are never run here.
    return new TorchTensor(storage, viewDType ?? storage.dtype, offset, shape, strides);
  }

  private indexTuple(fn: string, what: string, v: PyValue): number[] {
    if (!(v instanceof PyTuple) || !v.items.every(isIndex)) {
      this.corrupt(`${fn} needs its ${what} as a tuple of non-negative integers, got ${describe(v)}`);
    }
    return v.items as number[];
  }

  private newObject(cls: PyValue): PyValue {
    if (cls instanceof TorchGlobal && cls.what.kind === 'ordered-dict') return new PyDict(true);
    if (cls instanceof TorchGlobal) this.unsupported(`creating a ${cls.fullName} object with NEWOBJ`);
    return this.corrupt(`NEWOBJ applies ${describe(cls)}, which is not a class`);
  }

  private build(obj: PyValue, state: PyValue): void {
    // torch.save gives a state dict its `_metadata` (per-module versions) as instance state.
    if (obj instanceof PyDict) {
      obj.attributes = state;
      return;
    }
    this.unsupported(`setting the state of ${describe(obj)} (BUILD)`);
  }

  /** BINPERSID: torch's persistent id for a storage, `('storage', storage_type, key, location, numel)`. */
  private persistentLoad(pid: PyValue): TorchStorage {
    if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage' || pid.items.length !== 5) {
      this.corrupt(`persistent id ${describe(pid)} is not ('storage', storage_type, key, location, numel)`);
    }
    const [, type, key, location, numel] = pid.items as [PyValue, PyValue, PyValue, PyValue, PyValue];
    if (!(type instanceof TorchGlobal) || type.what.kind !== 'storage-type')
      this.corrupt(`storage type ${describe(type)} is not a torch storage class`);
    if (typeof key !== 'string' || typeof location !== 'string' || !isIndex(numel)) {
      this.corrupt(
        `storage id (${describe(key)}, ${describe(location)}, ${describe(numel)}) is not (key, location, numel)`,
      );
    }
    const known = this.storages.get(key);
    if (known) {
      // Every tensor viewing a storage names it again; torch refuses to save one storage under two dtypes.
      if (known.dtype !== type.what.dtype || known.numel !== numel) {
        this.corrupt(
          `storage ${key} is named as ${known.storageType} of ${known.numel} and as ${type.name} of ${numel}`,
        );
      }
      return known;
    }
    const storage = new TorchStorage(key, type.name, type.what.dtype, location, numel);
    this.storages.set(key, storage);
    return storage;
  }

  // ---- stack, memo, containers ----

  private push(v: PyValue): void {
    if (this.stack.length >= MAX_PICKLE_STACK) this.overBudget(`more than ${MAX_PICKLE_STACK} values on the stack`);
    this.stack.push(v);
  }

  private memoPut(i: number): void {
    if (!this.memo.has(i) && this.memo.size >= MAX_PICKLE_MEMO) {
      this.overBudget(`more than ${MAX_PICKLE_MEMO} memo entries`);
    }
    this.memo.set(i, this.top());
  }

  private pop(): PyValue {
    const floor = this.marks.length ? this.marks[this.marks.length - 1] : 0;
    if (this.stack.length <= floor) this.corrupt('stack underflow');
    return this.stack.pop()!;
  }

  private popN(n: number): PyValue[] {
    const floor = this.marks.length ? this.marks[this.marks.length - 1] : 0;
    if (this.stack.length - n < floor) this.corrupt('stack underflow');
    return this.stack.splice(this.stack.length - n, n);
  }

  private top(): PyValue {
    const floor = this.marks.length ? this.marks[this.marks.length - 1] : 0;
    if (this.stack.length <= floor) this.corrupt('stack underflow');
    return this.stack[this.stack.length - 1];
  }

  private popMark(): PyValue[] {
    const mark = this.marks.pop();
    if (mark === undefined) this.corrupt('no MARK to pop to');
    return this.stack.splice(mark);
  }

  private memoGet(i: number): PyValue {
    if (!this.memo.has(i)) this.corrupt(`memo entry ${i} is read before it is written`);
    return this.memo.get(i)!;
  }

  private listOnTop(op: string): PyList {
    const t = this.top();
    if (!(t instanceof PyList)) this.corrupt(`${op} onto ${describe(t)}, not a list`);
    return t;
  }

  private dictOnTop(op: string): PyDict {
    const t = this.top();
    if (!(t instanceof PyDict)) this.corrupt(`${op} onto ${describe(t)}, not a dict`);
    return t;
  }

  private setItems(dict: PyDict, kv: readonly PyValue[]): void {
    if (kv.length % 2 !== 0) this.corrupt(`an odd number (${kv.length}) of keys and values`);
    for (let i = 0; i < kv.length; i += 2) {
      const key = kv[i];
      if (!isKey(key)) this.unsupported(`a dict key of type ${describe(key)}`);
      dict.items.set(key, kv[i + 1]);
    }
  }

  // ---- reading the stream ----

  /** Advances over `n` bytes and returns where they start. */
  private take(n: number): number {
    if (this.pos + n > this.data.length) {
      this.corrupt(
        `${OPCODE_NAMES[this.data[this.at]]} needs ${n} more bytes but the stream ends at byte ${this.data.length} (truncated)`,
      );
    }
    const p = this.pos;
    this.pos += n;
    return p;
  }

  private u8(): number {
    return this.data[this.take(1)];
  }

  private length(n: number): number {
    if (n < 0) this.corrupt(`negative length ${n}`);
    if (n > MAX_PICKLE_STRING_BYTES && this.pos + n <= this.data.length) {
      this.overBudget(`a value of ${n} bytes (the limit is ${MAX_PICKLE_STRING_BYTES})`);
    }
    return n;
  }

  private u64Length(): number {
    const n = this.view.getBigUint64(this.take(8), true);
    // Anything longer than the stream itself is corrupt; `take` reports it.
    return this.length(n > BigInt(this.data.length) ? this.data.length + 1 : Number(n));
  }

  private text(n: number): string {
    const p = this.take(n);
    try {
      return this.utf8.decode(this.data.subarray(p, p + n));
    } catch {
      return this.corrupt(`a string of ${n} bytes is not valid UTF-8`);
    }
  }

  private bytes(n: number): Uint8Array {
    const p = this.take(n);
    return this.data.slice(p, p + n);
  }

  /** Little-endian two's complement integer of `n` bytes (LONG1, LONG4). */
  private long(n: number): number | bigint {
    if (n > MAX_PICKLE_LONG_BYTES) {
      this.unsupported(`an integer of ${n} bytes (at most ${MAX_PICKLE_LONG_BYTES} are read)`);
    }
    const p = this.take(n);
    if (n === 0) return 0;
    let x = 0n;
    for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(this.data[p + i]);
    if (this.data[p + n - 1] & 0x80) x -= 1n << BigInt(8 * n);
    return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
  }

  /** A newline-terminated UTF-8 line (GLOBAL and INST arguments). */
  private line(): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) this.corrupt('a GLOBAL name runs to the end of the stream (truncated)');
    const n = end - this.pos;
    const s = this.text(n);
    this.pos++; // the newline
    return s;
  }

  private corrupt(why: string): never {
    const { file, member } = this.origin;
    return fail('CORRUPT_FILE', `${member} in ${file} is not a valid pickle at byte ${this.at}: ${why}`, {
      file,
      member,
      offset: this.at,
    });
  }

  /** A budget exceeded: CORRUPT_FILE naming the limit (no state dict comes near one). */
  private overBudget(what: string): never {
    const { file, member } = this.origin;
    const message = `${member} in ${file} is not a state dict mamba-ts will read: at byte ${this.at} it needs ${what}`;
    return fail('CORRUPT_FILE', message, {
      file,
      member,
      offset: this.at,
    });
  }

  private unsupported(what: string): never {
    const { file, member } = this.origin;
    return fail(
      'UNSUPPORTED',
      `${member} in ${file} uses ${what} at byte ${this.at}; a torch.save state dict holds only tensors and plain containers`,
      {
        file,
        member,
        offset: this.at,
      },
    );
  }
}

function isIndex(v: PyValue | undefined): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isKey(v: PyValue): v is PyKey {
  return (
    v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean'
  );
}

/** A short Python-flavoured description of a value, for messages. */
export function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number' || typeof v === 'bigint') return `int ${v}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v instanceof Uint8Array) return `bytes (${v.length})`;
  if (v instanceof PyFloat) return `float ${v.value}`;
  if (v instanceof PyTuple) return `tuple (${v.items.length} items)`;
  if (v instanceof PyList) return `list (${v.items.length} items)`;
  if (v instanceof PySet) return `set (${v.items.length} items)`;
  if (v instanceof PyDict) return `${v.ordered ? 'OrderedDict' : 'dict'} (${v.items.size} items)`;
  if (v instanceof TorchGlobal) return v.fullName;
  if (v instanceof TorchStorage) return `storage ${v.key}`;
  return `tensor (${v.shape.join(', ')})`;
}
