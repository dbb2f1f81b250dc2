"""moatless from Python: a ctypes binding of the C API (include/moat.h, libmoat.so).

    import moat
    model = moat.Model("models/kjv-tiny.gguf")
    session = moat.Session(model, device="cpu")
    for token, piece in moat.generate(session, model.tokenize("In the beginning"),
                                      max_tokens=16, temperature=0.8, seed=7):
        print(token, piece)

The library is found through $MOAT_LIBRARY (a path to libmoat.so), else next to a
build of this repository (build*/lib/libmoat.so), else by the system's loader. Errors
are raised as moat.Error (moat.UserError for a bad file, device or option: the message
says what to do). Uses the standard library only.
"""

import ctypes
import glob
import os

__all__ = ["Error", "UserError", "Model", "Session", "Sampler", "SamplingOptions", "generate", "devices",
           "version", "library"]

# moat_status
OK, INVALID_ARGUMENT, USER, INTERNAL, OUT_OF_MEMORY, BUFFER_TOO_SMALL = range(6)
# moat_cache_type
CACHE_TYPES = {"f16": 0, "f32": 1, "bf16": 2, "q8_0": 3}
# moat_stop_reason
STOP_REASONS = ("limit", "eos", "context_full", "callback")
SEED_RANDOM = 2**64 - 1


class Error(RuntimeError):
    """A moat_* call that did not return MOAT_OK; `status` is its moat_status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class UserError(Error):
    """MOAT_ERROR_USER: a bad file, device or option; the message says what to do."""


class SamplingOptions(ctypes.Structure):
    """moat_sampling_options; SamplingOptions() holds llama.cpp's defaults (as moat run)."""

    _fields_ = [("temperature", ctypes.c_double), ("top_k", ctypes.c_int64), ("top_p", ctypes.c_double),
                ("min_p", ctypes.c_double), ("repeat_penalty", ctypes.c_double),
                ("frequency_penalty", ctypes.c_double), ("presence_penalty", ctypes.c_double),
                ("repeat_last_n", ctypes.c_int64), ("seed", ctypes.c_uint64)]

    def __init__(self, **fields):
        super().__init__()
        _check(library().moat_sampling_options_default(ctypes.byref(self)))
        for name, value in fields.items():
            if name not in dict(self._fields_):
                raise TypeError(f"SamplingOptions has no field {name!r}; it has {', '.join(n for n, _ in self._fields_)}")
            if name == "seed" and (value is None or value < 0):
                value = SEED_RANDOM
            setattr(self, name, value)


class _GenerationResult(ctypes.Structure):
    _fields_ = [("generated_tokens", ctypes.c_int64), ("stop", ctypes.c_int)]


_TOKEN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                                   ctypes.c_void_p)
_lib = None


def _candidates():
    if os.environ.get("MOAT_LIBRARY"):
        return [os.environ["MOAT_LIBRARY"]]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return sorted(glob.glob(os.path.join(root, "build*", "lib", "libmoat.so"))) + ["libmoat.so"]


def _declare(lib):
    p, i32, i64, sz = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_size_t
    i32p, i64p, szp = ctypes.POINTER(i32), ctypes.POINTER(i64), ctypes.POINTER(sz)
    fp, cp = ctypes.POINTER(ctypes.c_float), ctypes.c_char_p
    signatures = {
        "moat_version": (cp, []),
        "moat_last_error": (cp, []),
        "moat_status_name": (cp, [ctypes.c_int]),
        "moat_device_count": (ctypes.c_int, [szp]),
        "moat_device_info": (ctypes.c_int, [sz, ctypes.POINTER(cp), ctypes.POINTER(cp)]),
        "moat_model_open": (ctypes.c_int, [cp, ctypes.POINTER(p)]),
        "moat_model_free": (None, [p]),
        "moat_model_vocab_size": (ctypes.c_int, [p, i32p]),
        "moat_model_bos": (ctypes.c_int, [p, i32p]),
        "moat_model_eos": (ctypes.c_int, [p, i32p]),
        "moat_model_training_context": (ctypes.c_int, [p, i64p]),
        "moat_tokenize": (ctypes.c_int, [p, cp, sz, ctypes.c_int, i32p, sz, szp]),
        "moat_detokenize": (ctypes.c_int, [p, i32p, sz, ctypes.c_int, ctypes.c_char_p, sz, szp]),
        "moat_session_create": (ctypes.c_int, [p, cp, i64, ctypes.c_int, ctypes.c_int, ctypes.POINTER(p)]),
        "moat_session_free": (None, [p]),
        "moat_session_evaluate": (ctypes.c_int, [p, i32p, sz, fp, sz]),
        "moat_session_rewind": (ctypes.c_int, [p, i64]),
        "moat_session_cached_tokens": (ctypes.c_int, [p, i64p]),
        "moat_session_context": (ctypes.c_int, [p, i64p]),
        "moat_session_tokens": (ctypes.c_int, [p, i32p, sz, szp]),
        "moat_sampling_options_default": (ctypes.c_int, [ctypes.POINTER(SamplingOptions)]),
        "moat_sampler_create": (ctypes.c_int, [ctypes.POINTER(SamplingOptions), ctypes.POINTER(p)]),
        "moat_sampler_free": (None, [p]),
        "moat_sampler_sample": (ctypes.c_int, [p, fp, sz, i32p, sz, i32p]),
        "moat_generate": (ctypes.c_int, [p, i32p, sz, ctypes.POINTER(SamplingOptions), i64, ctypes.c_int,
                                         _TOKEN_CALLBACK, p, ctypes.POINTER(_GenerationResult)]),
    }
    for name, (restype, argtypes) in signatures.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = restype, argtypes


def library():
    """The loaded libmoat.so (loaded on first use)."""
    global _lib
    if _lib is None:
        tried = []
        for path in _candidates():
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                tried.append(f"{path} ({e})")
                continue
            _declare(lib)
            _lib = lib
            break
        else:
            raise OSError("libmoat.so not found: build it (ninja -C build moat_c) or set MOAT_LIBRARY to its path; "
                          "tried " + "; ".join(tried))
    return _lib


def _check(status):
    if status != OK:
        lib = library()
        message = lib.moat_last_error().decode("utf-8", "replace")
        name = lib.moat_status_name(status).decode()
        raise (UserError if status == USER else Error)(status, f"{name}: {message}")


def _ids(tokens):
    tokens = list(tokens)
    return (ctypes.c_int32 * len(tokens))(*tokens), len(tokens)


def version():
    return library().moat_version().decode()


def devices():
    """[(id, name)] of the devices this machine offers."""
    lib, count = library(), ctypes.c_size_t()
    _check(lib.moat_device_count(ctypes.byref(count)))
    out = []
    for i in range(count.value):
        id_, name = ctypes.c_char_p(), ctypes.c_char_p()
        _check(lib.moat_device_info(i, ctypes.byref(id_), ctypes.byref(name)))
        out.append((id_.value.decode(), name.value.decode("utf-8", "replace")))
    return out


class Model:
    """A GGUF file or Hugging Face folder, opened (moat_model_open)."""

    def __init__(self, path):
        self._lib, handle = library(), ctypes.c_void_p()
        _check(self._lib.moat_model_open(os.fsencode(path), ctypes.byref(handle)))
        self._handle = handle

    def close(self):
        if getattr(self, "_handle", None):
            self._lib.moat_model_free(self._handle)
            self._handle = None

    __del__ = close

    def _get(self, function, ctype):
        value = ctype()
        _check(function(self._handle, ctypes.byref(value)))
        return value.value

    @property
    def vocab_size(self):
        return self._get(self._lib.moat_model_vocab_size, ctypes.c_int32)

    @property
    def bos(self):
        return self._get(self._lib.moat_model_bos, ctypes.c_int32)

    @property
    def eos(self):
        return self._get(self._lib.moat_model_eos, ctypes.c_int32)

    @property
    def training_context(self):
        return self._get(self._lib.moat_model_training_context, ctypes.c_int64)

    def tokenize(self, text, add_bos=True):
        """The ids of `text` (str or UTF-8 bytes), BOS first when `add_bos`."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        n = ctypes.c_size_t()
        status = self._lib.moat_tokenize(self._handle, data, len(data), int(add_bos), None, 0, ctypes.byref(n))
        if status != BUFFER_TOO_SMALL:
            _check(status)
            return []
        ids = (ctypes.c_int32 * n.value)()
        _check(self._lib.moat_tokenize(self._handle, data, len(data), int(add_bos), ids, n.value, ctypes.byref(n)))
        return list(ids[:n.value])

    def detokenize(self, ids, render_special=True):
        """The bytes of `ids` (bytes: a cut may fall inside a UTF-8 character)."""
        array, count = _ids(ids)
        length = ctypes.c_size_t()
        status = self._lib.moat_detokenize(self._handle, array, count, int(render_special), None, 0,
                                           ctypes.byref(length))
        if status != BUFFER_TOO_SMALL:
            _check(status)
        buffer = ctypes.create_string_buffer(length.value + 1)
        _check(self._lib.moat_detokenize(self._handle, array, count, int(render_special), buffer, len(buffer),
                                         ctypes.byref(length)))
        return buffer.raw[:length.value]


class Session:
    """A model on a device with a cache of `context` tokens (0: the model's, within memory)."""

    def __init__(self, model, device="cpu", context=0, cache_type="f16", cpu_threads=0):
        if cache_type not in CACHE_TYPES:
            raise ValueError(f"cache_type {cache_type!r}: give one of {', '.join(CACHE_TYPES)}")
        self._lib, self.model, handle = library(), model, ctypes.c_void_p()
        _check(self._lib.moat_session_create(model._handle, device.encode(), context, CACHE_TYPES[cache_type],
                                             cpu_threads, ctypes.byref(handle)))
        self._handle = handle
        self._logits = (ctypes.c_float * model.vocab_size)()

    def close(self):
        if getattr(self, "_handle", None):
            self._lib.moat_session_free(self._handle)
            self._handle = None

    __del__ = close

    def evaluate(self, tokens):
        """Evaluates `tokens` after those held; the last one's logits (a list of n_vocab floats)."""
        array, count = _ids(tokens)
        _check(self._lib.moat_session_evaluate(self._handle, array, count, self._logits, len(self._logits)))
        return list(self._logits)

    def rewind(self, tokens):
        _check(self._lib.moat_session_rewind(self._handle, tokens))

    @property
    def cached_tokens(self):
        value = ctypes.c_int64()
        _check(self._lib.moat_session_cached_tokens(self._handle, ctypes.byref(value)))
        return value.value

    @property
    def tokens(self):
        """The ids the cache holds, in order."""
        n = ctypes.c_size_t()
        status = self._lib.moat_session_tokens(self._handle, None, 0, ctypes.byref(n))
        if status != BUFFER_TOO_SMALL:
            _check(status)
            return []
        ids = (ctypes.c_int32 * n.value)()
        _check(self._lib.moat_session_tokens(self._handle, ids, n.value, ctypes.byref(n)))
        return list(ids[:n.value])

    @property
    def context(self):
        value = ctypes.c_int64()
        _check(self._lib.moat_session_context(self._handle, ctypes.byref(value)))
        return value.value


class Sampler:
    """Chooses a token from logits (moat_sampler_*); keyword arguments as SamplingOptions."""

    def __init__(self, options=None, **fields):
        self._lib, handle = library(), ctypes.c_void_p()
        self.options = options if options is not None else SamplingOptions(**fields)
        _check(self._lib.moat_sampler_create(ctypes.byref(self.options), ctypes.byref(handle)))
        self._handle = handle

    def close(self):
        if getattr(self, "_handle", None):
            self._lib.moat_sampler_free(self._handle)
            self._handle = None

    __del__ = close

    def sample(self, logits, history=()):
        values = (ctypes.c_float * len(logits))(*logits)
        array, count = _ids(history)
        token = ctypes.c_int32()
        _check(self._lib.moat_sampler_sample(self._handle, values, len(values), array, count, ctypes.byref(token)))
        return token.value


def generate(session, prompt, max_tokens, options=None, stop_at_eos=True, callback=None, **fields):
    """Generates after `prompt` (ids) with moat_generate.

    With `callback(token, piece_bytes)` (return True to stop) it runs to the end and
    returns (generated ids, stop reason: "limit", "eos", "context_full" or "callback").
    Without, it returns an iterator of (token, piece_bytes), produced as they are
    chosen: generation runs while the iterator is consumed, in the caller's thread,
    token by token (leaving the loop early stops it). `options` is a SamplingOptions,
    or its fields are given as keywords (temperature=0.8, seed=7, ...).
    """
    options = options if options is not None else SamplingOptions(**fields)
    if callback is not None:
        return _generate(session, prompt, max_tokens, options, stop_at_eos, callback)
    return _iterate(session, prompt, max_tokens, options, stop_at_eos)


def _generate(session, prompt, max_tokens, options, stop_at_eos, callback):
    lib, array, count = library(), *_ids(prompt)
    tokens, raised = [], []

    def on_token(token, text, length, _user_data):
        try:
            tokens.append(token)
            return 1 if callback(token, ctypes.string_at(text, length) if length else b"") else 0
        except BaseException as e:  # never across the C frames: stop, then raise it here
            raised.append(e)
            return 1

    result = _GenerationResult()
    _check(lib.moat_generate(session._handle, array, count, ctypes.byref(options), max_tokens, int(stop_at_eos),
                             _TOKEN_CALLBACK(on_token), None, ctypes.byref(result)))
    if raised:
        raise raised[0]
    return tokens, STOP_REASONS[result.stop]


def _iterate(session, prompt, max_tokens, options, stop_at_eos):
    # moat_generate's loop, token by token with the session and one sampler, so that
    # the caller's thread runs it as the iterator is consumed: the same ids as one
    # moat_generate call (which also stops at the tokenizer's end of sequence where a
    # file names two).
    sampler = Sampler(options)
    history = session.tokens + list(prompt)
    eos = session.model.eos if stop_at_eos else -1
    logits = session.evaluate(prompt)
    produced = 0
    while produced < max_tokens:
        token = sampler.sample(logits, history)
        if token == eos:
            return
        history.append(token)
        produced += 1
        yield token, session.model.detokenize([token], render_special=False)
        if session.cached_tokens >= session.context:
            return
        logits = session.evaluate([token])
