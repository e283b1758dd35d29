#!/usr/bin/env python3
"""Convert a "forcing family" PyTorch checkpoint to safetensors + a Wan config.json.

The forcing family (Self-Forcing, Causal-Forcing, Rolling-Forcing, LongLive)
publishes Wan2.1-based causal video diffusion generators as ``torch.save``
dicts such as::

    {"generator": state_dict, "generator_ema": state_dict, "critic": state_dict, ...}

where each state dict maps ``model.`` + the original Wan parameter name
(sometimes with ``_fsdp_wrapped_module.`` inserted, e.g.
``model._fsdp_wrapped_module.blocks.0.self_attn.q.weight``) to a tensor.
This tool turns one of those state dicts into a directory that fastar loads::

    OUTDIR/diffusion_pytorch_model.safetensors   original Wan tensor names
    OUTDIR/config.json                           Wan's original config format

Usage
-----
::

    python3 tools/convert_forcing_checkpoint.py INPUT.pt OUTDIR \\
        [--key auto|generator_ema|generator] [--dtype keep|bf16|f32] \\
        [--num-heads N] [--hybrid-layers LIST] [--hybrid-lora-alpha A]

``--key``
    Which state dict to export.  ``auto`` (default) picks ``generator_ema``
    if present, else ``generator``, else the top-level dict itself when it
    already is a state dict (has a key ending in ``patch_embedding.weight``).
    Any other top-level key name may be given explicitly.
``--dtype``
    ``keep`` (default) writes floating-point tensors in their stored dtype
    (bf16 stays BF16); ``bf16`` / ``f32`` cast every floating-point tensor
    (f32 -> bf16 rounds to nearest even, NaN becomes 0x7FC0 as in PyTorch).
    Integer and bool tensors are never cast.
``--num-heads``
    The number of attention heads cannot be read off the tensor shapes; the
    default is ``dim // 128`` (every Wan2.1 model uses head dim 128: 1.3B has
    dim 1536 / 12 heads, 14B has dim 5120 / 40 heads).  ARL² checkpoints state
    it (``a_proj.weight`` is [heads, dim]); a contradicting value is an error.
``--hybrid-layers``
    ARL² checkpoints only: the hybrid layers, e.g. ``0-21`` or ``0,1,5``.  They
    are read off the keys anyway; given, the list must match them exactly.
``--hybrid-lora-alpha``
    ARL² checkpoints only: the LoRA alpha written to config.json as
    ``hybrid_lora_alpha`` (default 32, ARL²'s ``--lora_alpha``); the checkpoint
    does not store it, and fastar merges each pair with scale alpha / rank.

Example (Self-Forcing DMD checkpoint)::

    python3 tools/convert_forcing_checkpoint.py checkpoints/self_forcing_dmd.pt \\
        models/self_forcing_dmd --dtype bf16

What it does
------------
* Needs only Python 3 and numpy -- PyTorch is NOT required.  The ``.pt`` file
  (a zip archive holding ``<root>/data.pkl``, ``<root>/data/<key>`` raw
  storage bytes and optionally ``<root>/byteorder``) is read directly.
* ``data.pkl`` is unpickled with a restricted unpickler that only resolves the
  globals a state dict needs (``collections.OrderedDict``, ``torch._utils``
  tensor/parameter rebuild functions, ``torch.*Storage`` classes, ``torch``
  dtype objects and a few inert builtins such as ``set``).  Any other global
  (e.g. ``os.system``) is refused with an error naming it: a checkpoint from
  the internet is untrusted and is never allowed to run code.  Storages are
  read lazily, so only the exported state dict's bytes are loaded, one tensor
  at a time.
* Key prefixes ``model.``, ``module.``, ``_orig_mod.`` and the wrapper
  segments ``_fsdp_wrapped_module.`` / ``_checkpoint_wrapped_module.``
  (anywhere in a key) are stripped; non-tensor entries are dropped.
* The result is validated against the Wan2.1 layout: every
  ``blocks.N`` must have exactly the expected tensors (27 with qk-norm and
  cross-attention norm: ``modulation``, ``self_attn.{q,k,v,o}.{weight,bias}``,
  ``self_attn.norm_{q,k}.weight``, ``norm3.{weight,bias}``,
  ``cross_attn.{q,k,v,o}.{weight,bias}``, ``cross_attn.norm_{q,k}.weight``,
  ``ffn.0.{weight,bias}``, ``ffn.2.{weight,bias}``) with consistent shapes,
  plus the non-block tensors (patch/text/time embeddings, time projection,
  head).  Missing or unexpected keys are listed and the tool exits with 2.
* ``config.json`` is inferred from the shapes: ``dim``, ``in_dim``,
  ``patch_size`` from ``patch_embedding.weight`` [dim, in_dim, pt, ph, pw];
  ``text_dim`` from ``text_embedding.0.weight``; ``freq_dim`` from
  ``time_embedding.0.weight``; ``ffn_dim`` from ``blocks.0.ffn.0.weight``;
  ``out_dim`` from ``head.head.weight`` [pt*ph*pw*out_dim, dim];
  ``num_layers`` = number of blocks; ``qk_norm`` / ``cross_attn_norm`` from
  the presence of ``self_attn.norm_q`` / ``norm3``.
* ARL² (lky-ang/ARL2, docs/arl2.md) mode, automatic when the keys show it: a
  block whose ``self_attn`` has ARL²'s hybrid-attention tensors
  (``phi_{q,k,v}.weight``, ``a_proj/b_proj/gate_proj.weight``, ``A_log``,
  ``dt_bias``, and optionally all six ``lora_{q,k,v}_{A,B}``) is a hybrid
  layer; a block whose ``ffn.K`` (K = 0, 2) is LoRA-wrapped has
  ``ffn.K.linear.{weight,bias}`` + ``ffn.K.lora_{A,B}`` instead of
  ``ffn.K.{weight,bias}`` (hybrid layers or all layers).  Every part must be
  complete and have the shapes fastar expects.  The tensors pass through under
  their ARL² names, which are the names fastar reads (fastar merges the LoRA
  pairs at load time), and config.json gets ``hybrid_layers`` and
  ``hybrid_lora_alpha``.  A key that is neither Wan nor ARL² is refused, named.
* Both output files are written atomically (temporary file + ``os.replace``).

Exit status: 0 on success, 2 on any expected error (unreadable or untrusted
input, missing key, layout mismatch), with a message on stderr.
"""

import argparse
import collections
import json
import os
import pickle
import re
import sys
import tempfile
import zipfile

import numpy as np

SAFETENSORS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"


class ConvertError(Exception):
    """An expected failure: reported on stderr, exit status 2."""


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------

# safetensors dtype name -> (numpy storage dtype, little-endian), itemsize
_ST_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # no numpy bf16: raw bit patterns
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
    "F8_E4M3": np.dtype("u1"),  # raw bit patterns
    "F8_E5M2": np.dtype("u1"),
}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}

# torch.<Name>Storage -> safetensors dtype name
_STORAGE_TYPES = {
    "DoubleStorage": "F64",
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
    "Float8_e4m3fnStorage": "F8_E4M3",
    "Float8_e5m2Storage": "F8_E5M2",
    "UntypedStorage": "U8",
}

# torch.<dtype> global -> safetensors dtype name
_TORCH_DTYPES = {
    "float64": "F64", "double": "F64",
    "float32": "F32", "float": "F32",
    "float16": "F16", "half": "F16",
    "bfloat16": "BF16",
    "int64": "I64", "long": "I64",
    "int32": "I32", "int": "I32",
    "int16": "I16", "short": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}


def _refuse_setstate(self, state):
    raise ConvertError("malformed checkpoint: data.pkl tries to set the state of a %s"
                       % type(self).__name__)


class _StorageType:
    """Stand-in for a torch.*Storage class (only used as a dtype tag)."""

    __slots__ = ("name", "dtype")
    __setstate__ = _refuse_setstate

    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_TYPES[name]

    def __repr__(self):
        return "torch." + self.name


class _TorchDtype:
    """Stand-in for a torch dtype object such as torch.float32."""

    __slots__ = ("name", "dtype")
    __setstate__ = _refuse_setstate

    def __init__(self, name):
        self.name = name
        self.dtype = _TORCH_DTYPES[name]

    def __repr__(self):
        return "torch." + self.name


# --------------------------------------------------------------------------
# lazy storages / tensors
# --------------------------------------------------------------------------

class _Storage:
    """A storage record of the zip archive; its bytes are read on demand."""

    __setstate__ = _refuse_setstate

    def __init__(self, archive, key, dtype, numel):
        self.archive = archive
        self.key = key
        self.dtype = dtype
        self.numel = numel

    def load(self):
        return self.archive.read_storage(self)


class LazyTensor:
    """A tensor view (offset, size, stride) into a lazily read storage."""

    # The pickle must not be able to overwrite the bounds-checked view.
    __setstate__ = _refuse_setstate

    def __init__(self, storage, offset, size, stride, dtype=None):
        self.storage = storage
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        self.dtype = dtype if dtype is not None else storage.dtype
        self._check_bounds()

    def _check_bounds(self):
        if len(self.shape) != len(self.stride):
            raise ConvertError("tensor with size %r but stride %r" % (self.shape, self.stride))
        if self.offset < 0 or any(s < 0 for s in self.shape) or any(s < 0 for s in self.stride):
            raise ConvertError("tensor with negative size/stride/offset")
        if self.numel > 0:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
            if last >= self.storage.numel:
                raise ConvertError(
                    "tensor view (offset %d, size %r, stride %r) exceeds its storage of %d elements"
                    % (self.offset, self.shape, self.stride, self.storage.numel))

    @property
    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def numpy(self):
        """Return a C-contiguous numpy copy (bf16/fp8 as raw unsigned ints)."""
        self._check_bounds()
        base = self.storage.load()
        if base.size != self.storage.numel:
            raise ConvertError("internal error: storage %s size mismatch" % self.storage.key)
        if self.dtype != self.storage.dtype:
            base = base.view(_ST_DTYPES[self.dtype])
        if self.numel == 0:
            return np.zeros(self.shape, dtype=base.dtype)
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.shape,
            strides=tuple(s * itemsize for s in self.stride), writeable=False)
        return np.ascontiguousarray(view).copy()


def _rebuild_tensor(storage, storage_offset, size, stride):
    if not isinstance(storage, _Storage):
        raise ConvertError("malformed checkpoint: tensor rebuilt from %r, not a storage" % (storage,))
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if metadata and any(bool(v) for v in dict(metadata).values()):
        raise ConvertError("unsupported tensor metadata %r (conj/neg views)" % (metadata,))
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    t = _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                           backward_hooks, metadata)
    if not isinstance(dtype, _TorchDtype):
        raise ConvertError("malformed checkpoint: tensor dtype %r" % (dtype,))
    if _ST_DTYPES[dtype.dtype].itemsize != _ST_DTYPES[storage.dtype].itemsize:
        raise ConvertError("unsupported checkpoint: %s tensor stored in a %s storage"
                           % (dtype.dtype, storage.dtype))
    t.dtype = dtype.dtype
    return t


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data


def _torch_size(*args):
    return tuple(*args)


# --------------------------------------------------------------------------
# restricted unpickling
# --------------------------------------------------------------------------

def _allowed_globals():
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch", "Size"): _torch_size,
        # Inert builtins that may appear in checkpoint metadata.
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("__builtin__", "set"): set,
    }
    for name in _STORAGE_TYPES:
        allowed[("torch", name)] = _StorageType(name)
    allowed[("torch.storage", "UntypedStorage")] = _StorageType("UntypedStorage")
    for name in _TORCH_DTYPES:
        allowed[("torch", name)] = _TorchDtype(name)
    return allowed


_ALLOWED = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a torch state dict needs."""

    def __init__(self, file, archive):
        super().__init__(file)
        self._archive = archive

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise ConvertError(
                "refusing to load checkpoint: data.pkl references the disallowed global "
                "'%s.%s' (only plain tensor state dicts are accepted; an untrusted pickle "
                "could execute code)" % (module, name))
        return obj

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise ConvertError("unsupported persistent id in data.pkl: %r" % (pid[:2] if isinstance(pid, tuple) else pid,))
        _, storage_type, key, _location, numel = pid
        if isinstance(storage_type, _TorchDtype):
            dtype = storage_type.dtype
        elif isinstance(storage_type, _StorageType):
            dtype = storage_type.dtype
        else:
            raise ConvertError("malformed checkpoint: storage type %r" % (storage_type,))
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise ConvertError("malformed checkpoint: storage key %r" % (key,))
        if not isinstance(numel, int) or numel < 0:
            raise ConvertError("malformed checkpoint: storage size %r" % (numel,))
        return self._archive.storage(key, dtype, numel)


class TorchZipArchive:
    """Reads a torch.save zip archive without torch."""

    def __init__(self, path):
        self.path = path
        if not os.path.isfile(path):
            raise ConvertError("input file not found: %s" % path)
        if not zipfile.is_zipfile(path):
            raise ConvertError(
                "%s is not a zip archive: expected a checkpoint written by torch.save "
                "(PyTorch >= 1.6 zip format); legacy/non-zip pickles are not supported" % path)
        try:
            self.zip = zipfile.ZipFile(path)
            names = self.zip.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise ConvertError("cannot read zip archive %s: %s" % (path, e))
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkls and "data.pkl" in names:
            pkls = ["data.pkl"]
        if not pkls:
            hint = ""
            if any(n.endswith("constants.pkl") for n in names):
                hint = " (this looks like a TorchScript archive, not a torch.save state dict)"
            raise ConvertError("%s: no data.pkl in the zip archive%s" % (path, hint))
        if len(pkls) > 1:
            raise ConvertError("%s: several data.pkl records in the zip archive: %s" % (path, pkls))
        self.root = pkls[0][: -len("data.pkl")]
        self.names = set(names)
        byteorder = "little"
        if self.root + "byteorder" in self.names:
            byteorder = self.zip.read(self.root + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ConvertError("%s: unknown byteorder record %r" % (path, byteorder))
        self.byteorder = byteorder
        self._storages = {}
        self._cache_key = None
        self._cache = None

    def load(self):
        try:
            with self.zip.open(self.root + "data.pkl") as f:
                return RestrictedUnpickler(f, self).load()
        except ConvertError:
            raise
        except Exception as e:  # malformed / truncated pickle
            raise ConvertError("%s: cannot unpickle data.pkl: %s: %s" % (self.path, type(e).__name__, e))

    def storage(self, key, dtype, numel):
        st = self._storages.get(key)
        if st is None:
            st = _Storage(self, key, dtype, numel)
            self._storages[key] = st
        elif st.dtype != dtype or st.numel != numel:
            raise ConvertError("malformed checkpoint: storage %s referenced with different types" % key)
        return st

    def read_storage(self, st):
        if self._cache_key == st.key:
            return self._cache
        name = self.root + "data/" + st.key
        if name not in self.names:
            raise ConvertError("%s: storage record %s missing from the zip archive" % (self.path, name))
        try:
            raw = self.zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ConvertError("%s: cannot read %s: %s" % (self.path, name, e))
        dt = _ST_DTYPES[st.dtype]
        if len(raw) != st.numel * dt.itemsize:
            raise ConvertError("%s: %s has %d bytes, expected %d (%d x %s)"
                               % (self.path, name, len(raw), st.numel * dt.itemsize, st.numel, st.dtype))
        arr = np.frombuffer(raw, dtype=dt.newbyteorder(">" if self.byteorder == "big" else "<"))
        if self.byteorder == "big" and dt.itemsize > 1:
            arr = arr.astype(dt)
        self._cache_key, self._cache = st.key, arr
        return arr


# --------------------------------------------------------------------------
# state dict selection and key cleanup
# --------------------------------------------------------------------------

def _looks_like_state_dict(d):
    return isinstance(d, dict) and any(
        isinstance(k, str) and k.endswith("patch_embedding.weight") for k in d)


def select_state_dict(ckpt, key):
    if not isinstance(ckpt, dict):
        raise ConvertError("checkpoint top level is a %s, expected a dict" % type(ckpt).__name__)
    available = ", ".join(repr(k) for k in ckpt.keys()) or "(none)"
    if key == "auto":
        for k in ("generator_ema", "generator"):
            if k in ckpt and isinstance(ckpt[k], dict):
                return k, ckpt[k]
        if _looks_like_state_dict(ckpt):
            return "(top level)", ckpt
        raise ConvertError("no 'generator_ema' or 'generator' state dict in the checkpoint "
                           "and the top level is not a Wan state dict; available keys: %s" % available)
    if key not in ckpt:
        raise ConvertError("key %r not in the checkpoint; available keys: %s" % (key, available))
    if not isinstance(ckpt[key], dict):
        raise ConvertError("checkpoint[%r] is a %s, not a state dict" % (key, type(ckpt[key]).__name__))
    return key, ckpt[key]


_WRAPPER_SEGMENTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
_LEADING_PREFIXES = ("model.", "module.", "_orig_mod.")


def clean_key(key):
    for seg in _WRAPPER_SEGMENTS:
        key = key.replace(seg, "")
    changed = True
    while changed:
        changed = False
        for p in _LEADING_PREFIXES:
            if key.startswith(p):
                key = key[len(p):]
                changed = True
    return key


def clean_state_dict(sd):
    out = {}
    dropped = []
    for k, v in sd.items():
        if not isinstance(v, LazyTensor):
            dropped.append(k)
            continue
        if not isinstance(k, str):
            raise ConvertError("non-string state dict key %r" % (k,))
        ck = clean_key(k)
        if ck in out:
            raise ConvertError("keys collide after prefix stripping: %r -> %r" % (k, ck))
        out[ck] = v
    return out, dropped


# --------------------------------------------------------------------------
# Wan layout validation and config inference
# --------------------------------------------------------------------------

def block_expected(qk_norm, cross_attn_norm):
    names = ["modulation"]
    for attn in ("self_attn", "cross_attn"):
        for proj in "qkvo":
            names += ["%s.%s.weight" % (attn, proj), "%s.%s.bias" % (attn, proj)]
        if qk_norm:
            names += ["%s.norm_q.weight" % attn, "%s.norm_k.weight" % attn]
    if cross_attn_norm:
        names += ["norm3.weight", "norm3.bias"]
    names += ["ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias"]
    return names


TOP_LEVEL_EXPECTED = [
    "patch_embedding.weight", "patch_embedding.bias",
    "text_embedding.0.weight", "text_embedding.0.bias",
    "text_embedding.2.weight", "text_embedding.2.bias",
    "time_embedding.0.weight", "time_embedding.0.bias",
    "time_embedding.2.weight", "time_embedding.2.bias",
    "time_projection.1.weight", "time_projection.1.bias",
    "head.head.weight", "head.head.bias", "head.modulation",
]

_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")

# ARL² (lky-ang/ARL2, docs/arl2.md): a hybrid block's self_attn is a HybridBlockAttention with
# these tensors on top of Wan's q/k/v/o/norm_q/norm_k.  fastar reads them under the same names.
ARL2_HYBRID = [
    "self_attn.phi_q.weight", "self_attn.phi_k.weight", "self_attn.phi_v.weight",  # [dim, D, 1]
    "self_attn.a_proj.weight", "self_attn.b_proj.weight", "self_attn.gate_proj.weight",  # [heads, dim]
    "self_attn.A_log", "self_attn.dt_bias",  # [heads]
]
# GDN-path LoRA (enable_gdn_lora): A [dim, r], B [r, dim] for q, k, v; hybrid blocks only.
ARL2_GDN_LORA = ["self_attn.lora_%s_%s" % (p, h) for p in "qkv" for h in "AB"]


def arl2_ffn_lora(k):
    """FFN LoRA (utils/lora.py LoRALinear around ffn.K): the base moves under ffn.K.linear."""
    return ["ffn.%d.linear.weight" % k, "ffn.%d.linear.bias" % k,
            "ffn.%d.lora_A" % k, "ffn.%d.lora_B" % k]


def block_expected_arl2(base, present):
    """The tensors a block must have given which ARL² parts its keys show.

    Returns (expected names, hybrid, ffn LoRA indices)."""
    expected = list(base)
    hybrid = any(n in present for n in ARL2_HYBRID + ARL2_GDN_LORA)
    if hybrid:
        expected += ARL2_HYBRID
        if any(n in present for n in ARL2_GDN_LORA):
            expected += ARL2_GDN_LORA
    ffn_lora = []
    for k in (0, 2):
        if any(n in present for n in arl2_ffn_lora(k)):
            ffn_lora.append(k)
            expected = [n for n in expected if n not in ("ffn.%d.weight" % k, "ffn.%d.bias" % k)]
            expected += arl2_ffn_lora(k)
    return expected, hybrid, ffn_lora


def parse_layer_list(text):
    """'0-21' / '0,1,5' / '0-3,7' / 'none' -> sorted list of distinct layer indices."""
    if text.strip().lower() in ("", "none"):
        return []
    layers = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConvertError("--hybrid-layers: cannot read %r; use indices and ranges such as "
                               "0-21 or 0,1,5 or 0-3,7" % part)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ConvertError("--hybrid-layers: empty range %r" % part)
        layers += range(lo, hi + 1)
    if len(set(layers)) != len(layers):
        raise ConvertError("--hybrid-layers lists a layer twice: %s" % text)
    return sorted(layers)


def _shape(sd, name):
    return sd[name].shape


def infer_and_validate(sd, num_heads=None, hybrid_layers=None, hybrid_lora_alpha=32.0):
    """Validate the Wan2.1 (+ ARL²) layout; return the config dict. Raises ConvertError.

    hybrid_layers: None to take ARL²'s hybrid blocks from the keys, or a list that must match them."""
    problems = []
    blocks = collections.defaultdict(dict)
    top = {}
    for k, v in sd.items():
        m = _BLOCK_RE.match(k)
        if m:
            blocks[int(m.group(1))][m.group(2)] = v
        else:
            top[k] = v

    missing_top = [k for k in TOP_LEVEL_EXPECTED if k not in top]
    unexpected_top = sorted(k for k in top if k not in TOP_LEVEL_EXPECTED)
    if missing_top:
        problems.append("missing tensors: " + ", ".join(missing_top))
    if unexpected_top:
        problems.append("unexpected tensors: " + ", ".join(unexpected_top))
    if not blocks:
        problems.append("no transformer blocks (blocks.N.*) found")
    if problems:
        raise ConvertError("checkpoint does not have the Wan2.1 layout:\n  " + "\n  ".join(problems))

    num_layers = len(blocks)
    idx = sorted(blocks)
    if idx != list(range(num_layers)):
        problems.append("block indices are not 0..%d: %s" % (num_layers - 1, idx))
    b0 = blocks[idx[0]]
    qk_norm = "self_attn.norm_q.weight" in b0
    cross_attn_norm = "norm3.weight" in b0
    expected = block_expected(qk_norm, cross_attn_norm)
    block_names = {}  # n -> the tensors blocks.n must have (Wan, plus the ARL² parts it shows)
    hybrid_found, ffn_lora_layers = [], []
    for n in idx:
        b = blocks[n]
        block_names[n], hybrid, ffn_lora = block_expected_arl2(expected, b)
        if hybrid:
            hybrid_found.append(n)
        if ffn_lora:
            ffn_lora_layers.append(n)
        miss = [e for e in block_names[n] if e not in b]
        extra = sorted(k for k in b if k not in block_names[n])
        if miss:
            problems.append("blocks.%d: missing %s" % (n, ", ".join(miss)))
        if extra:
            problems.append("blocks.%d: unexpected %s (neither a Wan2.1 nor an ARL² tensor)"
                            % (n, ", ".join(extra)))
    if problems:
        raise ConvertError(
            "checkpoint does not have the Wan2.1 layout (each block needs %d tensors: %s; "
            "ARL² hybrid blocks add %s [+ %s] and FFN LoRA replaces ffn.K.{weight,bias} by %s):\n  %s"
            % (len(expected), ", ".join(expected), ", ".join(ARL2_HYBRID), ", ".join(ARL2_GDN_LORA),
               ", ".join(arl2_ffn_lora(0)).replace(".0.", ".K."), "\n  ".join(problems)))
    arl2 = bool(hybrid_found or ffn_lora_layers or hybrid_layers)
    if hybrid_layers is not None and sorted(hybrid_layers) != hybrid_found:
        raise ConvertError(
            "--hybrid-layers %s does not match the checkpoint: its ARL² hybrid tensors (A_log, phi_*, "
            "a_proj, ...) are on layers %s; pass those layers or leave --hybrid-layers out"
            % (_layer_list_text(hybrid_layers), _layer_list_text(hybrid_found)))
    if not hybrid_lora_alpha > 0:
        raise ConvertError("--hybrid-lora-alpha must be positive, got %r" % (hybrid_lora_alpha,))

    pe = _shape(sd, "patch_embedding.weight")
    if len(pe) != 5:
        raise ConvertError("patch_embedding.weight has shape %r, expected [dim, in_dim, pt, ph, pw]" % (pe,))
    dim, in_dim, pt, ph, pw = pe
    text_dim = _shape(sd, "text_embedding.0.weight")[-1]
    freq_dim = _shape(sd, "time_embedding.0.weight")[-1]
    ffn0 = "ffn.0.linear.weight" if 0 in block_expected_arl2(expected, blocks[idx[0]])[2] else "ffn.0.weight"
    ffn_dim = _shape(sd, "blocks.%d.%s" % (idx[0], ffn0))[0]
    hh = _shape(sd, "head.head.weight")
    patch_vol = pt * ph * pw
    if len(hh) != 2 or hh[0] % patch_vol:
        raise ConvertError("head.head.weight has shape %r, not [%d*out_dim, dim]" % (hh, patch_vol))
    out_dim = hh[0] // patch_vol

    want = {
        "patch_embedding.bias": (dim,),
        "text_embedding.0.weight": (dim, text_dim), "text_embedding.0.bias": (dim,),
        "text_embedding.2.weight": (dim, dim), "text_embedding.2.bias": (dim,),
        "time_embedding.0.weight": (dim, freq_dim), "time_embedding.0.bias": (dim,),
        "time_embedding.2.weight": (dim, dim), "time_embedding.2.bias": (dim,),
        "time_projection.1.weight": (6 * dim, dim), "time_projection.1.bias": (6 * dim,),
        "head.head.weight": (patch_vol * out_dim, dim), "head.head.bias": (patch_vol * out_dim,),
        "head.modulation": (1, 2, dim),
    }
    block_shapes = {
        "modulation": (1, 6, dim),
        "ffn.0.weight": (ffn_dim, dim), "ffn.0.bias": (ffn_dim,),
        "ffn.2.weight": (dim, ffn_dim), "ffn.2.bias": (dim,),
        "norm3.weight": (dim,), "norm3.bias": (dim,),
    }
    for attn in ("self_attn", "cross_attn"):
        for proj in "qkvo":
            block_shapes["%s.%s.weight" % (attn, proj)] = (dim, dim)
            block_shapes["%s.%s.bias" % (attn, proj)] = (dim,)
        block_shapes["%s.norm_q.weight" % attn] = (dim,)
        block_shapes["%s.norm_k.weight" % attn] = (dim,)
    for k in (0, 2):
        block_shapes["ffn.%d.linear.weight" % k] = block_shapes["ffn.%d.weight" % k]
        block_shapes["ffn.%d.linear.bias" % k] = block_shapes["ffn.%d.bias" % k]

    heads_from = "--num-heads"
    if hybrid_found:  # ARL²'s a_proj [heads, dim] states the head count
        a_proj = _shape(sd, "blocks.%d.self_attn.a_proj.weight" % hybrid_found[0])
        if len(a_proj) != 2 or a_proj[0] <= 0:
            raise ConvertError("blocks.%d.self_attn.a_proj.weight has shape %r, expected [heads, dim]"
                               % (hybrid_found[0], list(a_proj)))
        if num_heads is not None and num_heads != a_proj[0]:
            raise ConvertError("--num-heads %d contradicts the checkpoint: ARL²'s a_proj.weight has %d "
                               "rows, one per head; leave --num-heads out" % (num_heads, a_proj[0]))
        num_heads, heads_from = a_proj[0], "ARL² a_proj.weight"
    if num_heads is None:
        if dim % 128:
            raise ConvertError("dim %d is not a multiple of 128; pass --num-heads" % dim)
        num_heads, heads_from = dim // 128, "default: dim // 128"
    if num_heads <= 0 or dim % num_heads:
        raise ConvertError("dim %d is not divisible by num_heads %d" % (dim, num_heads))
    head_dim = dim // num_heads
    for name in ARL2_HYBRID:
        if name.startswith("self_attn.phi_"):
            block_shapes[name] = (dim, head_dim, 1)  # Conv1d(dim, dim, 1, groups=heads)
        elif name.endswith(".weight"):
            block_shapes[name] = (num_heads, dim)
        else:
            block_shapes[name] = (num_heads,)

    lora_ranks = set()
    for n in idx:
        names = block_names[n]
        for e in names:
            if e in block_shapes:
                want["blocks.%d.%s" % (n, e)] = block_shapes[e]
        # LoRA pairs: A [in, r], B [r, out]; r is read off the shapes (fastar does the same).
        pairs = [("self_attn.lora_%s_A" % p, "self_attn.lora_%s_B" % p, dim, dim) for p in "qkv"]
        pairs += [("ffn.0.lora_A", "ffn.0.lora_B", dim, ffn_dim), ("ffn.2.lora_A", "ffn.2.lora_B", ffn_dim, dim)]
        for a_name, b_name, fan_in, fan_out in pairs:
            if a_name not in names:
                continue
            a = tuple(_shape(sd, "blocks.%d.%s" % (n, a_name)))
            bb = tuple(_shape(sd, "blocks.%d.%s" % (n, b_name)))
            if len(a) != 2 or len(bb) != 2 or a[0] != fan_in or bb[1] != fan_out or a[1] != bb[0] or a[1] <= 0:
                problems.append("blocks.%d.%s %s / %s %s: expected A [%d, r] and B [r, %d]"
                                % (n, a_name, list(a), b_name, list(bb), fan_in, fan_out))
            else:
                lora_ranks.add(a[1])
    for name, shp in want.items():
        if tuple(sd[name].shape) != shp:
            problems.append("%s: shape %s, expected %s" % (name, list(sd[name].shape), list(shp)))
    if problems:
        raise ConvertError("inconsistent tensor shapes:\n  " + "\n  ".join(problems))

    config = collections.OrderedDict([
        ("_class_name", "WanModel"),
        ("model_type", "t2v"),
        ("dim", dim),
        ("ffn_dim", ffn_dim),
        ("freq_dim", freq_dim),
        ("in_dim", in_dim),
        ("out_dim", out_dim),
        ("num_heads", num_heads),
        ("num_layers", num_layers),
        ("text_len", 512),
        ("text_dim", text_dim),
        ("patch_size", [pt, ph, pw]),
        ("eps", 1e-06),
        ("qk_norm", qk_norm),
        ("cross_attn_norm", cross_attn_norm),
    ])
    if arl2:  # fastar's fields (wan_config.cpp): which layers are hybrid, and the LoRA scale's alpha
        config["hybrid_layers"] = hybrid_found
        config["hybrid_lora_alpha"] = float(hybrid_lora_alpha)
    summary = {"arl2": arl2, "heads_from": heads_from, "ffn_lora_layers": ffn_lora_layers,
               "lora_ranks": sorted(lora_ranks),
               "gdn_lora": any(("self_attn.lora_q_A" in block_names[n]) for n in hybrid_found)}
    return config, summary


def _layer_list_text(layers):
    return "[" + ",".join(str(n) for n in layers) + "]" if layers else "none"


# --------------------------------------------------------------------------
# dtype conversion
# --------------------------------------------------------------------------

def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(x):
    """Round-to-nearest-even f32 -> bf16 bit patterns; NaN -> 0x7FC0 (as PyTorch)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    rounding_bias = np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    out = ((u + rounding_bias) >> np.uint32(16)).astype(np.uint16)
    out[np.isnan(x)] = np.uint16(0x7FC0)
    return out


def out_dtype(src, mode):
    if mode == "keep" or src not in _FLOAT_DTYPES:
        return src
    if src in ("F8_E4M3", "F8_E5M2"):
        raise ConvertError("casting float8 tensors is not supported; use --dtype keep")
    return {"bf16": "BF16", "f32": "F32"}[mode]


def convert_array(arr, src, dst):
    if src == dst:
        return arr
    if src == "BF16":
        f = bf16_bits_to_f32(arr)
    else:
        f = arr.astype(np.float32)
    if dst == "F32":
        return f
    if dst == "BF16":
        return f32_to_bf16_bits(f)
    raise ConvertError("unsupported cast %s -> %s" % (src, dst))


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _atomic_writer(outdir, final_name):
    fd, tmp = tempfile.mkstemp(prefix="." + final_name + ".", suffix=".tmp", dir=outdir)
    return os.fdopen(fd, "wb"), tmp


def write_safetensors(path, tensors, dtype_mode, metadata):
    """tensors: {name: LazyTensor}; streamed one tensor at a time."""
    names = sorted(tensors, key=natural_key)
    header = collections.OrderedDict()
    header["__metadata__"] = metadata
    plan = []
    offset = 0
    for n in names:
        t = tensors[n]
        dst = out_dtype(t.dtype, dtype_mode)
        nbytes = t.numel * _ST_DTYPES[dst].itemsize
        header[n] = {"dtype": dst, "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        plan.append((n, t, dst, nbytes))
        offset += nbytes
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)

    outdir = os.path.dirname(os.path.abspath(path))
    f, tmp = _atomic_writer(outdir, os.path.basename(path))
    try:
        with f:
            f.write(len(hbytes).to_bytes(8, "little"))
            f.write(hbytes)
            for n, t, dst, nbytes in plan:
                arr = convert_array(t.numpy(), t.dtype, dst)
                arr = np.ascontiguousarray(arr, dtype=_ST_DTYPES[dst])
                data = arr.tobytes()
                if len(data) != nbytes:
                    raise ConvertError("internal error: %s has %d bytes, planned %d" % (n, len(data), nbytes))
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return offset


def write_json(path, obj):
    outdir = os.path.dirname(os.path.abspath(path))
    f, tmp = _atomic_writer(outdir, os.path.basename(path))
    try:
        with f:
            f.write((json.dumps(obj, indent=2) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def convert(input_path, outdir, key="auto", dtype_mode="keep", num_heads=None, log=print,
            hybrid_layers=None, hybrid_lora_alpha=32.0):
    archive = TorchZipArchive(input_path)
    ckpt = archive.load()
    chosen, raw_sd = select_state_dict(ckpt, key)
    if isinstance(ckpt, dict):
        log("checkpoint keys: %s" % ", ".join(repr(k) for k in ckpt.keys()))
    log("exporting state dict: %s" % chosen)
    sd, dropped = clean_state_dict(raw_sd)
    if dropped:
        log("dropped %d non-tensor entries: %s" % (len(dropped), ", ".join(map(str, dropped))))
    if not sd:
        raise ConvertError("state dict %s holds no tensors" % chosen)
    config, summary = infer_and_validate(sd, num_heads, hybrid_layers, hybrid_lora_alpha)

    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise ConvertError("cannot create output directory %s: %s" % (outdir, e))
    metadata = collections.OrderedDict([
        ("format", "pt"),
        ("source", os.path.basename(input_path)),
        ("converted_by", "fastar convert_forcing_checkpoint"),
    ])
    st_path = os.path.join(outdir, SAFETENSORS_NAME)
    try:
        nbytes = write_safetensors(st_path, sd, dtype_mode, metadata)
        write_json(os.path.join(outdir, CONFIG_NAME), config)
    except OSError as e:
        raise ConvertError("cannot write output: %s" % e)

    in_counts = collections.Counter(t.dtype for t in sd.values())
    out_counts = collections.Counter(out_dtype(t.dtype, dtype_mode) for t in sd.values())
    params = sum(t.numel for t in sd.values())
    log("tensors: %d  parameters: %d (%s)" % (
        len(sd), params, "%.3fB" % (params / 1e9) if params >= 1e8 else "%.3fM" % (params / 1e6)))
    log("dtypes in: %s  out: %s" % (
        ", ".join("%s x%d" % kv for kv in sorted(in_counts.items())),
        ", ".join("%s x%d" % kv for kv in sorted(out_counts.items()))))
    log("inferred config: dim=%d ffn_dim=%d freq_dim=%d in_dim=%d out_dim=%d num_layers=%d "
        "text_dim=%d patch_size=%s qk_norm=%s cross_attn_norm=%s"
        % (config["dim"], config["ffn_dim"], config["freq_dim"], config["in_dim"],
           config["out_dim"], config["num_layers"], config["text_dim"], config["patch_size"],
           str(config["qk_norm"]).lower(), str(config["cross_attn_norm"]).lower()))
    log("num_heads=%d (%s)" % (config["num_heads"], summary["heads_from"]))
    if summary["arl2"]:
        log("ARL²: hybrid_layers=%s (%d of %d)  GDN LoRA: %s  FFN LoRA on layers: %s  LoRA rank(s): %s  "
            "hybrid_lora_alpha=%g" % (
                _layer_list_text(config["hybrid_layers"]), len(config["hybrid_layers"]), config["num_layers"],
                "yes" if summary["gdn_lora"] else "no", _layer_list_text(summary["ffn_lora_layers"]),
                ",".join(map(str, summary["lora_ranks"])) or "none", config["hybrid_lora_alpha"]))
    log("wrote %s (%d bytes of tensor data)" % (st_path, nbytes))
    log("wrote %s" % os.path.join(outdir, CONFIG_NAME))
    return config


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert a Self-Forcing / Causal-Forcing / Rolling-Forcing / LongLive / ARL² .pt "
                    "checkpoint to safetensors + Wan config.json (no torch needed).",
        epilog="ARL² checkpoints (lky-ang/ARL2) are recognised by their keys: blocks whose self_attn has "
               "phi_{q,k,v}, a_proj, b_proj, gate_proj, A_log, dt_bias (and optionally lora_{q,k,v}_{A,B}) "
               "are hybrid layers, LoRA-wrapped FFNs have ffn.K.linear.* + ffn.K.lora_{A,B}. Their tensors "
               "pass through under the names fastar reads, and config.json gets hybrid_layers and "
               "hybrid_lora_alpha. Keys that are neither Wan2.1 nor ARL² are refused. See docs/arl2.md.")
    ap.add_argument("input", help="checkpoint written by torch.save (.pt)")
    ap.add_argument("outdir", help="output directory")
    ap.add_argument("--key", default="auto",
                    help="state dict to export: auto (default), generator_ema, generator, or "
                         "any other top-level key")
    ap.add_argument("--dtype", default="keep", choices=("keep", "bf16", "f32"),
                    help="floating-point output dtype (default: keep)")
    ap.add_argument("--num-heads", type=int, default=None,
                    help="attention heads (default: read off ARL²'s a_proj.weight, else dim // 128)")
    ap.add_argument("--hybrid-layers", default=None, metavar="LIST",
                    help="ARL² checkpoints: the hybrid layers, e.g. 0-21 or 0,1,5; must match the "
                         "layers whose keys carry ARL² hybrid tensors (default: read off the keys)")
    ap.add_argument("--hybrid-lora-alpha", type=float, default=32.0, metavar="A",
                    help="ARL² checkpoints: LoRA alpha written to config.json as hybrid_lora_alpha "
                         "(the checkpoint does not store it; scale = alpha / rank; default: 32, "
                         "ARL²'s --lora_alpha default)")
    args = ap.parse_args(argv)
    try:
        hybrid_layers = None if args.hybrid_layers is None else parse_layer_list(args.hybrid_layers)
        convert(args.input, args.outdir, args.key, args.dtype, args.num_heads,
                hybrid_layers=hybrid_layers, hybrid_lora_alpha=args.hybrid_lora_alpha)
    except ConvertError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory while converting", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
