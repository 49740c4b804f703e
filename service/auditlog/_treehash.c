/* _treehash: the bulk SHA-256 of `handover audit verify`'s fast path, in C over OpenSSL's libcrypto.
 *
 * Two functions, each the C twin of a pure-Python one in treehash.py (which the tests compare it with):
 *   copy_rows(data, offset) -> (next offset, stored leaf hashes, recomputed leaf hashes)
 *       reads the complete rows of a binary COPY of (leaf_hash, leaf) from `offset`, and hashes each leaf as
 *       RFC 9162 does, SHA-256(0x00 || leaf); it stops at the first incomplete row or at the trailer.
 *   parents(level) -> the next level up: SHA-256(0x01 || left || right) of each pair of 32-byte hashes.
 * Python's own hashlib spends most of its time per call, not per byte; here one call hashes thousands of leaves,
 * and the hashing runs without the GIL, so a worker receives the next rows while it hashes these.
 * The framing is checked before any hashing: every length is read within the buffer, and a row that is not
 * (int16 2, int32 32, 32 bytes, int32 n >= 0, n bytes) is refused with ValueError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <stdint.h>
#include <string.h>

#define DIGEST_SIZE 32
#define ROW_HEAD 42 /* int16 field count, int32 32, the stored hash, int32 leaf length */

static const EVP_MD *sha256_md;

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint16_t be16(const unsigned char *p) { return (uint16_t)(((unsigned)p[0] << 8) | (unsigned)p[1]); }

/* The length of the row at p: 0 if the data ends inside it, -1 if it is not a (leaf_hash, leaf) row. */
static Py_ssize_t row_length(const unsigned char *p, Py_ssize_t available)
{
    if (available < 2)
        return 0;
    if (be16(p) != 2)
        return -1;
    if (available < 6)
        return 0;
    if (be32(p + 2) != DIGEST_SIZE)
        return -1;
    if (available < ROW_HEAD)
        return 0;
    uint32_t leaf = be32(p + ROW_HEAD - 4);
    if (leaf > 0x7fffffffu) /* -1 is SQL NULL */
        return -1;
    if ((Py_ssize_t)leaf > available - ROW_HEAD)
        return 0;
    return ROW_HEAD + (Py_ssize_t)leaf;
}

static int digest(EVP_MD_CTX *context, const unsigned char *prefix, const unsigned char *data, size_t size,
                  unsigned char *out)
{
    return EVP_DigestInit_ex(context, sha256_md, NULL) && EVP_DigestUpdate(context, prefix, 1) &&
           EVP_DigestUpdate(context, data, size) && EVP_DigestFinal_ex(context, out, NULL);
}

static PyObject *copy_rows(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "y*n", &view, &offset))
        return NULL;
    if (offset < 0 || offset > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "offset outside the data");
        return NULL;
    }
    const unsigned char *data = view.buf;
    Py_ssize_t end = offset, rows = 0;
    for (;;) { /* the framing first, with the GIL: how many whole rows, and are they all rows */
        Py_ssize_t available = view.len - end;
        if (available >= 2 && be16(data + end) == 0xffff)
            break; /* the trailer */
        Py_ssize_t length = row_length(data + end, available);
        if (length == 0)
            break;
        if (length < 0) {
            PyBuffer_Release(&view);
            return PyErr_Format(PyExc_ValueError, "not a (leaf_hash, leaf) row at byte %zd", end);
        }
        end += length;
        rows += 1;
    }
    PyObject *stored = PyBytes_FromStringAndSize(NULL, rows * DIGEST_SIZE);
    PyObject *digests = PyBytes_FromStringAndSize(NULL, rows * DIGEST_SIZE);
    if (stored == NULL || digests == NULL) {
        Py_XDECREF(stored);
        Py_XDECREF(digests);
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *stored_out = (unsigned char *)PyBytes_AS_STRING(stored);
    unsigned char *digest_out = (unsigned char *)PyBytes_AS_STRING(digests);
    int ok = 1, framed = 1;
    Py_BEGIN_ALLOW_THREADS
    static const unsigned char leaf_prefix = 0x00;
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    ok = context != NULL;
    const unsigned char *p = data + offset, *limit = data + end;
    for (Py_ssize_t row = 0; ok && row < rows; row++) {
        size_t leaf = be32(p + ROW_HEAD - 4);
        if (leaf > (size_t)(limit - (p + ROW_HEAD))) { /* only a buffer written to meanwhile: never read past it */
            framed = 0;
            break;
        }
        memcpy(stored_out + row * DIGEST_SIZE, p + 6, DIGEST_SIZE);
        ok = digest(context, &leaf_prefix, p + ROW_HEAD, leaf, digest_out + row * DIGEST_SIZE);
        p += ROW_HEAD + leaf;
    }
    EVP_MD_CTX_free(context);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (!ok || !framed) {
        Py_DECREF(stored);
        Py_DECREF(digests);
        PyErr_SetString(framed ? PyExc_RuntimeError : PyExc_ValueError,
                        framed ? "OpenSSL's SHA-256 failed" : "the data changed while it was read");
        return NULL;
    }
    return Py_BuildValue("nNN", end, stored, digests);
}

static PyObject *parents(PyObject *module, PyObject *args)
{
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view))
        return NULL;
    if (view.len % DIGEST_SIZE) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "a level is a whole number of 32-byte hashes");
        return NULL;
    }
    Py_ssize_t pairs = view.len / (2 * DIGEST_SIZE);
    PyObject *level = PyBytes_FromStringAndSize(NULL, pairs * DIGEST_SIZE);
    if (level == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *data = view.buf;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(level);
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    static const unsigned char node_prefix = 0x01;
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    ok = context != NULL;
    for (Py_ssize_t pair = 0; ok && pair < pairs; pair++)
        ok = digest(context, &node_prefix, data + pair * 2 * DIGEST_SIZE, 2 * DIGEST_SIZE, out + pair * DIGEST_SIZE);
    EVP_MD_CTX_free(context);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (!ok) {
        Py_DECREF(level);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL's SHA-256 failed");
        return NULL;
    }
    return level;
}

static PyMethodDef methods[] = {
    {"copy_rows", copy_rows, METH_VARARGS,
     "copy_rows(data, offset) -> (next offset, stored leaf hashes, SHA-256(0x00 || leaf) of each leaf)"},
    {"parents", parents, METH_VARARGS, "parents(level) -> SHA-256(0x01 || left || right) of each pair"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef treehash_module = {
    PyModuleDef_HEAD_INIT, "_treehash", "Bulk RFC 9162 leaf and node hashing over libcrypto.", -1, methods,
};

PyMODINIT_FUNC PyInit__treehash(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    /* Fetched once: an implicit fetch by EVP_sha256() on every EVP_DigestInit_ex costs more than the hash. */
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    sha256_md = EVP_sha256();
#endif
    if (sha256_md == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    return PyModule_Create(&treehash_module);
}
