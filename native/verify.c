/* jpki.verify._native: the optional compiled loop behind verify_batch (jpki[native]).
 *
 * One call verifies a chunk of RSA PKCS#1 v1.5 signatures: it copies pointers to the
 * (immutable) bytes objects while holding the GIL, then releases the GIL for the whole loop:
 * build one OpenSSL public-key context per distinct key, and per item hash the data (or take
 * the digest), recover the DigestInfo and compare it in constant time. It answers only "plainly
 * valid or not": the indices of the items that are not, which the Python layer re-checks and
 * explains itself. So this loop can only ever save work, never change a verdict (a refusal here
 * is re-decided in Python; an acceptance must be one Python would make: the tests check that).
 * Algorithm policy (key size, SHA-1) is not decided here either: the Python layer does that.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <openssl/opensslv.h>
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "the jpki native loop needs OpenSSL 3.0 or later (EVP_PKEY_fromdata)"
#endif
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

/* Bumped when the call's arguments or answer change: a stale build is then ignored. */
#define JPKI_NATIVE_ABI 2
#define MAX_PREFIX 32 /* the longest DigestInfo prefix (SHA-512: 19 bytes), with room */
#define MAX_DIGEST 64

/* A public key, made once per certificate and kept by the Python layer's key cache: the
 * EVP_PKEY (immutable once made, so shared by threads; OpenSSL caches its Montgomery form) and
 * one verify-recover context, lent to one call at a time (lending happens under the GIL). */
typedef struct {
    PyObject_HEAD
    EVP_PKEY *pkey;
    EVP_PKEY_CTX *spare; /* NULL while a call has it (or before the first call) */
    size_t size;         /* modulus bytes = the signature length */
} KeyObject;

typedef struct {
    KeyObject *key; /* NULL: no key here (the Python layer decides) */
    EVP_PKEY_CTX *ctx; /* this call's context; NULL: unusable */
} key_slot;

typedef struct {
    Py_ssize_t key;
    int md; /* 256, 384, 512; anything else: not handled here */
    const unsigned char *prefix;
    Py_ssize_t prefix_len;
} plan_slot;

typedef struct {
    const unsigned char *sig, *data, *digest;
    Py_ssize_t sig_len, data_len, digest_len;
    Py_ssize_t plan;
    char usable; /* 0: an argument this loop does not take (the Python layer re-checks) */
} item_slot;

static int bytes_or_none(PyObject *o, const unsigned char **p, Py_ssize_t *len, char *usable)
{
    if (o == Py_None) {
        *p = NULL;
        *len = -1;
        return 0;
    }
    if (!PyBytes_Check(o)) { /* bytearray, memoryview...: left to the Python loop */
        *usable = 0;
        *p = NULL;
        *len = -1;
        return 0;
    }
    *p = (const unsigned char *)PyBytes_AS_STRING(o);
    *len = PyBytes_GET_SIZE(o);
    return 0;
}

static EVP_PKEY *make_pkey(const unsigned char *nb, Py_ssize_t n_len, const unsigned char *eb,
                           Py_ssize_t e_len)
{
    EVP_PKEY_CTX *kctx = NULL;
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *n = NULL, *e = NULL;

    n = BN_bin2bn(nb, (int)n_len, NULL);
    e = BN_bin2bn(eb, (int)e_len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (n == NULL || e == NULL || bld == NULL
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)
        || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto done;
    kctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (kctx == NULL || EVP_PKEY_fromdata_init(kctx) <= 0
        || EVP_PKEY_fromdata(kctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    else if ((size_t)EVP_PKEY_get_size(pkey) != (size_t)BN_num_bytes(n)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
done:
    EVP_PKEY_CTX_free(kctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    ERR_clear_error();
    return pkey;
}

static EVP_PKEY_CTX *make_ctx(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL || EVP_PKEY_verify_recover_init(ctx) <= 0
        || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        ctx = NULL;
    }
    ERR_clear_error();
    return ctx;
}

static PyObject *Key_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    const char *n, *e;
    Py_ssize_t n_len, e_len;
    static char *kwlist[] = {"modulus", "exponent", NULL};
    KeyObject *self;
    EVP_PKEY *pkey;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y#y#:Key", kwlist, &n, &n_len, &e, &e_len))
        return NULL;
    if (n_len < 64 || n_len > 2048 || e_len < 1 || e_len > 2048) { /* 512..16384 bits */
        PyErr_SetString(PyExc_ValueError, "not an RSA key size this loop takes");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    pkey = make_pkey((const unsigned char *)n, n_len, (const unsigned char *)e, e_len);
    Py_END_ALLOW_THREADS
    if (pkey == NULL) {
        PyErr_SetString(PyExc_ValueError, "OpenSSL refuses this RSA public key");
        return NULL;
    }
    self = (KeyObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    self->pkey = pkey;
    self->spare = NULL;
    self->size = (size_t)EVP_PKEY_get_size(pkey);
    return (PyObject *)self;
}

static void Key_dealloc(KeyObject *self)
{
    EVP_PKEY_CTX_free(self->spare);
    EVP_PKEY_free(self->pkey);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Key_size(KeyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->size);
}

static PyGetSetDef Key_getset[] = {
    {"size", (getter)Key_size, NULL, "modulus bytes (the signature length)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject KeyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "jpki.verify._native.Key",
    .tp_basicsize = sizeof(KeyObject),
    .tp_dealloc = (destructor)Key_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Key(modulus, exponent): an RSA public key (big-endian bytes) for verify_many.",
    .tp_getset = Key_getset,
    .tp_new = Key_new,
};

/* SHA-256/384/512, fetched once at import: the one-shot SHA256() of OpenSSL 3 fetches the
 * algorithm on every call, which costs more than hashing a short document. */
static EVP_MD *g_md[3];

static int md_index(int bits)
{
    return bits == 256 ? 0 : bits == 384 ? 1 : bits == 512 ? 2 : -1;
}

/* 1: plainly valid. The conditions are the Python fast path's, in the same order. */
static int check_item(const item_slot *it, const plan_slot *plans, const key_slot *keys,
                      EVP_MD_CTX *mctx, unsigned char *buf, size_t buf_len)
{
    unsigned int got;
    int mi;
    const plan_slot *pl;
    const key_slot *k;
    unsigned char expected[MAX_PREFIX + MAX_DIGEST];
    size_t md_len, out_len;

    if (!it->usable)
        return 0;
    pl = &plans[it->plan];
    k = &keys[pl->key];
    if (k->ctx == NULL)
        return 0;
    if ((mi = md_index(pl->md)) < 0 || g_md[mi] == NULL)
        return 0;
    md_len = (size_t)EVP_MD_get_size(g_md[mi]);
    memcpy(expected, pl->prefix, (size_t)pl->prefix_len);
    if (it->data != NULL) {
        if (it->digest != NULL) /* both given: Python compares them and explains */
            return 0;
        if (mctx == NULL || !EVP_DigestInit_ex2(mctx, g_md[mi], NULL)
            || !EVP_DigestUpdate(mctx, it->data, (size_t)it->data_len)
            || !EVP_DigestFinal_ex(mctx, expected + pl->prefix_len, &got) || got != md_len) {
            ERR_clear_error();
            return 0;
        }
    } else if (it->digest != NULL && (size_t)it->digest_len == md_len) {
        memcpy(expected + pl->prefix_len, it->digest, md_len);
    } else {
        return 0;
    }
    /* PKCS#1 (RFC 8017 8.2.2 step 1): the signature is exactly as long as the modulus. */
    if ((size_t)it->sig_len != k->key->size || k->key->size > buf_len)
        return 0;
    out_len = buf_len;
    if (EVP_PKEY_verify_recover(k->ctx, buf, &out_len, it->sig, (size_t)it->sig_len) <= 0) {
        ERR_clear_error();
        return 0;
    }
    return out_len == (size_t)pl->prefix_len + md_len
        && CRYPTO_memcmp(buf, expected, out_len) == 0;
}

PyDoc_STRVAR(verify_many_doc,
"verify_many(keys, plans, plan_of, signatures, datas, digests) -> list[int]\n\n"
"keys: a Key or None per key; plans: (key index, 256|384|512,\n"
"DigestInfo prefix) per plan; then per item its plan index, signature, data or None and\n"
"digest or None. Answers the indices of the items that are not plainly valid, in order.");

static PyObject *verify_many(PyObject *self, PyObject *args)
{
    PyObject *a_keys, *a_plans, *a_pis, *a_sigs, *a_datas, *a_digests;
    PyObject *keys_t = NULL, *plans_t = NULL, *pis_t = NULL, *sigs_t = NULL, *datas_t = NULL,
             *digests_t = NULL, *result = NULL;
    key_slot *keys = NULL;
    plan_slot *plans = NULL;
    item_slot *items = NULL;
    char *ok = NULL;
    unsigned char *buf = NULL;
    size_t buf_len = 0;
    EVP_MD_CTX *mctx;
    Py_ssize_t nk, np, n, i;

    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOO:verify_many", &a_keys, &a_plans, &a_pis, &a_sigs,
                          &a_datas, &a_digests))
        return NULL;
    /* Tuples hold their items: nothing can be freed under us once the GIL is released. */
    if ((keys_t = PySequence_Tuple(a_keys)) == NULL || (plans_t = PySequence_Tuple(a_plans)) == NULL
        || (pis_t = PySequence_Tuple(a_pis)) == NULL || (sigs_t = PySequence_Tuple(a_sigs)) == NULL
        || (datas_t = PySequence_Tuple(a_datas)) == NULL
        || (digests_t = PySequence_Tuple(a_digests)) == NULL)
        goto done;
    nk = PyTuple_GET_SIZE(keys_t);
    np = PyTuple_GET_SIZE(plans_t);
    n = PyTuple_GET_SIZE(pis_t);
    if (PyTuple_GET_SIZE(sigs_t) != n || PyTuple_GET_SIZE(datas_t) != n
        || PyTuple_GET_SIZE(digests_t) != n) {
        PyErr_SetString(PyExc_ValueError, "the item columns differ in length");
        goto done;
    }
    keys = PyMem_Calloc((size_t)nk + 1, sizeof *keys);
    plans = PyMem_Calloc((size_t)np + 1, sizeof *plans);
    items = PyMem_Calloc((size_t)n + 1, sizeof *items);
    ok = PyMem_Calloc((size_t)n + 1, 1);
    if (keys == NULL || plans == NULL || items == NULL || ok == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < nk; i++) {
        PyObject *k = PyTuple_GET_ITEM(keys_t, i);
        if (k == Py_None)
            continue;
        if (!PyObject_TypeCheck(k, &KeyType)) {
            PyErr_SetString(PyExc_TypeError, "a key is a Key or None");
            goto done;
        }
        keys[i].key = (KeyObject *)k; /* kept alive by keys_t */
        /* Borrow the key's context: a second call on the same key meanwhile makes its own. */
        keys[i].ctx = keys[i].key->spare;
        keys[i].key->spare = NULL;
        if (keys[i].key->size > buf_len)
            buf_len = keys[i].key->size;
    }
    for (i = 0; i < np; i++) {
        PyObject *p = PyTuple_GET_ITEM(plans_t, i), *pre;
        if (!PyTuple_Check(p) || PyTuple_GET_SIZE(p) != 3
            || !PyBytes_Check(pre = PyTuple_GET_ITEM(p, 2))) {
            PyErr_SetString(PyExc_TypeError, "a plan is (key index, hash bits, prefix bytes)");
            goto done;
        }
        plans[i].key = PyLong_AsSsize_t(PyTuple_GET_ITEM(p, 0));
        plans[i].md = PyLong_AsLong(PyTuple_GET_ITEM(p, 1));
        if (PyErr_Occurred())
            goto done;
        if (plans[i].key < 0 || plans[i].key >= nk) {
            PyErr_SetString(PyExc_IndexError, "a plan names a key that is not there");
            goto done;
        }
        plans[i].prefix = (const unsigned char *)PyBytes_AS_STRING(pre);
        plans[i].prefix_len = PyBytes_GET_SIZE(pre);
        if (plans[i].prefix_len > MAX_PREFIX)
            plans[i].md = 0;
    }
    for (i = 0; i < n; i++) {
        item_slot *it = &items[i];
        it->usable = 1;
        it->plan = PyLong_AsSsize_t(PyTuple_GET_ITEM(pis_t, i));
        if (it->plan == -1 && PyErr_Occurred())
            goto done;
        if (it->plan < 0 || it->plan >= np) {
            PyErr_SetString(PyExc_IndexError, "an item names a plan that is not there");
            goto done;
        }
        bytes_or_none(PyTuple_GET_ITEM(sigs_t, i), &it->sig, &it->sig_len, &it->usable);
        if (it->sig == NULL)
            it->usable = 0;
        bytes_or_none(PyTuple_GET_ITEM(datas_t, i), &it->data, &it->data_len, &it->usable);
        bytes_or_none(PyTuple_GET_ITEM(digests_t, i), &it->digest, &it->digest_len, &it->usable);
    }
    buf = PyMem_Malloc(buf_len + 1);
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    Py_BEGIN_ALLOW_THREADS
    for (i = 0; i < nk; i++)
        if (keys[i].key != NULL && keys[i].ctx == NULL)
            keys[i].ctx = make_ctx(keys[i].key->pkey);
    mctx = EVP_MD_CTX_new(); /* NULL: items with data are left to Python */
    for (i = 0; i < n; i++)
        ok[i] = (char)check_item(&items[i], plans, keys, mctx, buf, buf_len);
    EVP_MD_CTX_free(mctx);
    Py_END_ALLOW_THREADS

    if ((result = PyList_New(0)) == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        if (!ok[i]) {
            PyObject *idx = PyLong_FromSsize_t(i);
            if (idx == NULL || PyList_Append(result, idx) < 0) {
                Py_XDECREF(idx);
                Py_CLEAR(result);
                goto done;
            }
            Py_DECREF(idx);
        }
    }
done:
    if (keys != NULL) /* give the contexts back (the GIL is held: no other call races us) */
        for (i = 0; i < nk; i++) {
            if (keys[i].ctx == NULL)
                continue;
            if (keys[i].key->spare == NULL)
                keys[i].key->spare = keys[i].ctx;
            else
                EVP_PKEY_CTX_free(keys[i].ctx);
        }
    PyMem_Free(buf);
    PyMem_Free(ok);
    PyMem_Free(items);
    PyMem_Free(plans);
    PyMem_Free(keys);
    Py_XDECREF(keys_t);
    Py_XDECREF(plans_t);
    Py_XDECREF(pis_t);
    Py_XDECREF(sigs_t);
    Py_XDECREF(datas_t);
    Py_XDECREF(digests_t);
    return result;
}

PyDoc_STRVAR(openssl_version_doc, "openssl_version() -> str: the libcrypto this loop runs on.");

static PyObject *openssl_version(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(OpenSSL_version(OPENSSL_VERSION));
}

static PyMethodDef methods[] = {
    {"verify_many", verify_many, METH_VARARGS, verify_many_doc},
    {"openssl_version", openssl_version, METH_NOARGS, openssl_version_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "jpki.verify._native",
    "The optional compiled verification loop behind verify_batch.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m;
    static const char *const names[3] = {"SHA256", "SHA384", "SHA512"};
    int i;
    if (PyType_Ready(&KeyType) < 0)
        return NULL;
    for (i = 0; i < 3; i++)
        if (g_md[i] == NULL)
            g_md[i] = EVP_MD_fetch(NULL, names[i], NULL); /* NULL: that hash stays in Python */
    ERR_clear_error();
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&KeyType);
    if (PyModule_AddObject(m, "Key", (PyObject *)&KeyType) < 0) {
        Py_DECREF(&KeyType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "ABI", JPKI_NATIVE_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
