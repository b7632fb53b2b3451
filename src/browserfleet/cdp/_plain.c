/* The gateway's hot path in one call: is this client frame a plain CDP command, and of which
 * method?
 *
 * plain_method(frame, limit) reads one whole client WebSocket frame (final, text, masked, a
 * payload of at most `limit` bytes and never more than 65535), unmasks it into a private buffer
 * and scans the payload against a deliberately narrow grammar:
 *
 *   - a JSON object with the fields id (digits only, 0..2^31-1), method (a non-empty string),
 *     params (an object, optional) and sessionId (a string or null, optional), each at most
 *     once, and no other field;
 *   - strict JSON (RFC 8259) inside params, at most 64 levels deep with the command itself;
 *   - printable ASCII only inside strings: no backslash (so no escape), no control byte, no
 *     byte >= 0x80 (so no UTF-8 to validate);
 *   - numbers of at most 20 characters, exponents of at most two digits (every one a finite
 *     double for every reader);
 *   - no key twice in any object, and at most 32 keys per object (so the comparison of each
 *     key with the ones before it is bounded).
 *
 * It answers the method (a str) when the frame is such a command, None otherwise. None is
 * never a verdict: the caller then takes its general way, which parses the command fully and
 * answers every error. So this scanner only has to be right when it says yes, and everything
 * it says yes to is also plain to cdp.command.plain_envelope (a property test holds them to
 * that). It reads only inside the frame (every read is checked against the end), writes only
 * its own buffer, allocates nothing but that buffer, and its recursion is bounded by the depth
 * limit. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_PAYLOAD 65535
#define MAX_DEPTH 64
#define MAX_KEYS 32
#define MAX_NUMBER 20
#define MAX_EXPONENT_DIGITS 2
#define MAX_ID 2147483647L
#ifndef ON_STACK /* payloads up to this size are unmasked on the stack; the sanitizers' build */
#define ON_STACK 4096 /* sets it to 0, so each payload is a heap block of its exact size */
#endif

typedef struct {
    const unsigned char *start;
    Py_ssize_t len;
} span;

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} scanner;

static int scan_value(scanner *s, int depth);

static inline void skip_space(scanner *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* At a quote: the string's bytes (quotes excluded), the scanner past its closing quote. */
static int scan_string(scanner *s, span *out) {
    const unsigned char *start = ++s->p;
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"') {
            out->start = start;
            out->len = s->p - start;
            s->p++;
            return 1;
        }
        if (c < 0x20 || c >= 0x80 || c == '\\')
            return 0;
        s->p++;
    }
    return 0;
}

static inline int is_digit(scanner *s) { return s->p < s->end && *s->p >= '0' && *s->p <= '9'; }

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]{1,2})?, at most MAX_NUMBER characters. */
static int scan_number(scanner *s) {
    const unsigned char *start = s->p;
    if (*s->p == '-')
        s->p++;
    if (!is_digit(s))
        return 0;
    if (*s->p++ != '0')
        while (is_digit(s))
            s->p++;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!is_digit(s))
            return 0;
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        const unsigned char *digits = s->p;
        if (!is_digit(s))
            return 0;
        while (is_digit(s))
            s->p++;
        if (s->p - digits > MAX_EXPONENT_DIGITS)
            return 0;
    }
    return s->p - start <= MAX_NUMBER;
}

static int scan_word(scanner *s, const char *word, Py_ssize_t len) {
    if (s->end - s->p < len || memcmp(s->p, word, (size_t)len) != 0)
        return 0;
    s->p += len;
    return 1;
}

static int same(const span *a, const span *b) {
    return a->len == b->len && memcmp(a->start, b->start, (size_t)a->len) == 0;
}

/* After a member or an element: 1 past the container's closing byte, 0 past a comma (and the
 * space after it), -1 at anything else. */
static int next_member(scanner *s, unsigned char close) {
    skip_space(s);
    if (s->p >= s->end)
        return -1;
    if (*s->p == close) {
        s->p++;
        return 1;
    }
    if (*s->p != ',')
        return -1;
    s->p++;
    skip_space(s);
    return 0;
}

/* At '{': an object with no key twice. */
static int scan_object(scanner *s, int depth) {
    span keys[MAX_KEYS];
    int count = 0;
    if (depth >= MAX_DEPTH)
        return 0;
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 1;
    }
    for (;;) {
        span key;
        if (s->p >= s->end || *s->p != '"' || !scan_string(s, &key) || count == MAX_KEYS)
            return 0;
        for (int i = 0; i < count; i++)
            if (same(&keys[i], &key))
                return 0;
        keys[count++] = key;
        skip_space(s);
        if (s->p >= s->end || *s->p != ':')
            return 0;
        s->p++;
        skip_space(s);
        int next = scan_value(s, depth + 1) ? next_member(s, '}') : -1;
        if (next != 0)
            return next > 0;
    }
}

/* At '[': an array. */
static int scan_array(scanner *s, int depth) {
    if (depth >= MAX_DEPTH)
        return 0;
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 1;
    }
    for (;;) {
        int next = scan_value(s, depth + 1) ? next_member(s, ']') : -1;
        if (next != 0)
            return next > 0;
    }
}

/* Any JSON value, the scanner at its first byte (no space before it). */
static int scan_value(scanner *s, int depth) {
    span ignored;
    if (s->p >= s->end)
        return 0;
    switch (*s->p) {
    case '{':
        return scan_object(s, depth);
    case '[':
        return scan_array(s, depth);
    case '"':
        return scan_string(s, &ignored);
    case 't':
        return scan_word(s, "true", 4);
    case 'f':
        return scan_word(s, "false", 5);
    case 'n':
        return scan_word(s, "null", 4);
    default:
        return (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) && scan_number(s);
    }
}

enum { FIELD_ID = 1, FIELD_METHOD = 2, FIELD_PARAMS = 4, FIELD_SESSION = 8 };

static int field_of(const span *key) {
    switch (key->len) {
    case 2:
        return memcmp(key->start, "id", 2) == 0 ? FIELD_ID : 0;
    case 6:
        if (memcmp(key->start, "method", 6) == 0)
            return FIELD_METHOD;
        return memcmp(key->start, "params", 6) == 0 ? FIELD_PARAMS : 0;
    case 9:
        return memcmp(key->start, "sessionId", 9) == 0 ? FIELD_SESSION : 0;
    default:
        return 0;
    }
}

/* The id: digits only (no sign, fraction or exponent), no leading zero, at most MAX_ID. */
static int scan_id(scanner *s) {
    long value = 0;
    const unsigned char *start = s->p;
    if (!is_digit(s))
        return 0;
    while (is_digit(s)) {
        if (s->p - start >= 10)
            return 0;
        value = value * 10 + (*s->p++ - '0');
    }
    return value <= MAX_ID && (s->p - start == 1 || *start != '0');
}

/* The whole payload: the command's object and nothing after it but space. */
static int scan_command(scanner *s, span *method) {
    int seen = 0;
    skip_space(s);
    if (s->p >= s->end || *s->p != '{')
        return 0;
    s->p++;
    skip_space(s);
    for (;;) {
        span key, ignored;
        if (s->p >= s->end || *s->p != '"' || !scan_string(s, &key))
            return 0;
        int field = field_of(&key);
        if (field == 0 || (seen & field))
            return 0;
        seen |= field;
        skip_space(s);
        if (s->p >= s->end || *s->p != ':')
            return 0;
        s->p++;
        skip_space(s);
        if (s->p >= s->end)
            return 0;
        int ok;
        switch (field) {
        case FIELD_ID:
            ok = scan_id(s);
            break;
        case FIELD_METHOD:
            ok = *s->p == '"' && scan_string(s, method) && method->len > 0;
            break;
        case FIELD_PARAMS:
            ok = *s->p == '{' && scan_object(s, 1);
            break;
        default: /* FIELD_SESSION */
            ok = *s->p == '"' ? scan_string(s, &ignored) : scan_word(s, "null", 4);
        }
        int next = ok ? next_member(s, '}') : -1;
        if (next < 0)
            return 0;
        if (next > 0)
            break;
    }
    skip_space(s);
    return s->p == s->end && (seen & FIELD_ID) && (seen & FIELD_METHOD);
}

static PyObject *plain_method(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "plain_method(frame: bytes, limit: int)");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    const unsigned char *frame = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    /* FIN and the text opcode, no reserved bit; masked; a 7- or 16-bit length. */
    if (size < 6 || frame[0] != 0x81 || !(frame[1] & 0x80))
        Py_RETURN_NONE;
    Py_ssize_t start, length, code = frame[1] & 0x7F;
    if (code < 126) {
        start = 6;
        length = code;
    } else if (code == 126 && size >= 8) {
        start = 8;
        length = ((Py_ssize_t)frame[2] << 8) | frame[3];
    } else {
        Py_RETURN_NONE;
    }
    if (start + length != size || length > limit || length > MAX_PAYLOAD)
        Py_RETURN_NONE;

    unsigned char on_stack[ON_STACK > 0 ? ON_STACK : 1];
    unsigned char *payload = on_stack;
    if (length > ON_STACK && (payload = PyMem_Malloc((size_t)length)) == NULL)
        return PyErr_NoMemory();
    const unsigned char *mask = frame + start - 4;
    for (Py_ssize_t i = 0; i < length; i++)
        payload[i] = frame[start + i] ^ mask[i & 3];

    scanner s = {payload, payload + length};
    span method;
    PyObject *result;
    if (scan_command(&s, &method))
        result = PyUnicode_DecodeASCII((const char *)method.start, method.len, NULL);
    else
        result = Py_NewRef(Py_None);
    if (payload != on_stack)
        PyMem_Free(payload);
    return result;
}

static PyMethodDef methods[] = {
    {"plain_method", (PyCFunction)(void (*)(void))plain_method, METH_FASTCALL,
     "plain_method(frame, limit) -> str | None: the method of a plain CDP command in one whole "
     "client text frame, or None (then the general way decides)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "browserfleet.cdp._plain",
    .m_doc = "The gateway's hot path: a plain CDP command's method in one C call.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__plain(void) { return PyModule_Create(&module); }
