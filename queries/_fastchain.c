/* The audit chain's hot loop in C: an optional fast path for
 * queries/audit_trail.py (built by setup.py when a compiler, sqlite3.h and
 * OpenSSL's headers are there; without it the pure-Python verifier runs).
 *
 * It computes exactly what commands/event_store.py defines:
 *
 *     leaf(p)  = sha256(p 0x1F aggregate-id 0x1F version 0x1F topic 0x1F occurred_at 0x1F payload)
 *     chain(p) = sha256(chain(previous) || leaf(p))
 *
 * but it decides nothing: it stops at the first record where its form and the
 * stored chain disagree (or a value is not of the type the application writes)
 * and reports the state at the start of that record's page, so the Python
 * verifier re-reads that page with the reference form and names the finding
 * (or clears a false alarm). Verdicts are therefore the Python verifier's.
 *
 * Why C: per record the chain needs two sha256 calls and a row read; in
 * Python the interpreter and driver overhead around them is several times
 * the hashing itself. The GIL is released for the whole loop, so threads
 * verifying different pages run on different cores.
 */
#define PY_SSIZE_T_CLEAN
/* SHA256_Init/Update/Final: deprecated in OpenSSL 3 but direct. The one-call
 * SHA256() and the EVP interface look the algorithm up (a lock and a hash
 * table) and allocate a context on every call: a third of the time here. */
#define OPENSSL_SUPPRESS_DEPRECATED
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <Python.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "_chain_rule.h"

typedef struct {
    State done;           /* the verified state; when stopped, as of page_start */
    long long page_start; /* the page the Python verifier must decide (when stopped) */
    int stopped;
    int open_error;       /* the store could not be opened or queried at all */
    char message[256];
} Outcome;

/* The leaf of one events row, or 0 when its values are not of the types the
 * application writes (the Python verifier then looks at the record). */
static int leaf_of_row(sqlite3_stmt *ev, long long pos, unsigned char *leaf) {
    if (sqlite3_column_type(ev, 1) != SQLITE_TEXT || sqlite3_column_type(ev, 2) != SQLITE_INTEGER
        || sqlite3_column_type(ev, 3) != SQLITE_TEXT)
        return 0;
    int st = sqlite3_column_type(ev, 4);
    if (st != SQLITE_BLOB && st != SQLITE_TEXT)
        return 0;
    const unsigned char *id = sqlite3_column_text(ev, 1);
    int id_len = sqlite3_column_bytes(ev, 1);
    long long version = sqlite3_column_int64(ev, 2);
    const unsigned char *topic = sqlite3_column_text(ev, 3);
    int topic_len = sqlite3_column_bytes(ev, 3);
    const unsigned char *state = st == SQLITE_BLOB ? sqlite3_column_blob(ev, 4)
                                                   : sqlite3_column_text(ev, 4);
    int state_len = sqlite3_column_bytes(ev, 4);
    if (state == NULL)
        state = (const unsigned char *)"";
    return leaf_of_record(pos, id, (size_t)id_len, version, topic, (size_t)topic_len, state,
                          (size_t)state_len, leaf);
}

static int prepare(sqlite3 *db, const char *sql, long long lo, long long hi, sqlite3_stmt **st) {
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_int64(*st, 1, lo);
    sqlite3_bind_int64(*st, 2, hi);
    return 1;
}

/* Walk events and chain rows of (lo, hi] side by side; no Python objects touched. */
static void walk(sqlite3_stmt *ev, sqlite3_stmt *ch, long long lo, long long hi, long long page,
                 Outcome *out) {
    State now = out->done;
    long long page_end = lo + page;
    out->page_start = lo;
    int e = sqlite3_step(ev), c = sqlite3_step(ch);
    while (e == SQLITE_ROW || c == SQLITE_ROW) {
        long long pe = e == SQLITE_ROW ? sqlite3_column_int64(ev, 0) : hi + 1;
        long long pc = c == SQLITE_ROW ? sqlite3_column_int64(ch, 0) : hi + 1;
        long long pos = pe < pc ? pe : pc;
        while (pos > page_end) { /* a new page: what came before it holds */
            out->done = now;
            out->page_start = page_end;
            page_end += page;
        }
        unsigned char leaf[HASH], next[HASH];
        if (pe != pc || sqlite3_column_type(ch, 1) != SQLITE_BLOB
            || sqlite3_column_bytes(ch, 1) != HASH || !leaf_of_row(ev, pos, leaf)) {
            out->stopped = 1;
            return;
        }
        link2(now.head, leaf, next);
        if (memcmp(next, sqlite3_column_blob(ch, 1), HASH) != 0) {
            out->stopped = 1;
            return;
        }
        memcpy(now.head, next, HASH);
        now.records++;
        if (!now.first)
            now.first = pos;
        now.last = pos;
        e = sqlite3_step(ev);
        c = sqlite3_step(ch);
    }
    if (e != SQLITE_DONE || c != SQLITE_DONE) { /* a read error: the Python verifier retries */
        out->stopped = 1;
        return;
    }
    out->done = now;
    out->page_start = hi;
}

static void verify_range(const char *path, const char *table, long long lo, long long hi,
                         long long page, Outcome *out) {
    sqlite3 *db = NULL;
    sqlite3_stmt *ev = NULL, *ch = NULL;
    char sql_ev[512], sql_ch[512];
    snprintf(sql_ev, sizeof sql_ev,
             "SELECT rowid, originator_id, originator_version, topic, state FROM \"%s\" "
             "WHERE rowid > ?1 AND rowid <= ?2 ORDER BY rowid", table);
    snprintf(sql_ch, sizeof sql_ch,
             "SELECT position, chain_hash FROM \"%s_chain\" "
             "WHERE position > ?1 AND position <= ?2 ORDER BY position", table);
    /* NOMUTEX: one thread uses this connection; no lock around every column read. */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(out->message, sizeof out->message, "cannot open %s: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        out->open_error = 1;
    } else {
        sqlite3_busy_timeout(db, 30000);
        /* The whole file is read once: map it (as the Python source does). */
        sqlite3_exec(db, "PRAGMA mmap_size=1073741824", NULL, NULL, NULL);
        /* One read transaction: both statements see the same snapshot. */
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK
            || !prepare(db, sql_ev, lo, hi, &ev) || !prepare(db, sql_ch, lo, hi, &ch)) {
            snprintf(out->message, sizeof out->message, "cannot read %s: %s", path,
                     sqlite3_errmsg(db));
            out->open_error = 1;
        } else {
            walk(ev, ch, lo, hi, page, out);
        }
    }
    sqlite3_finalize(ev);
    sqlite3_finalize(ch);
    sqlite3_close(db);
}

PyDoc_STRVAR(verify_sqlite_doc,
"verify_sqlite(path, table, lo, hi, start, page) -> (records, first, last, head, stopped, page_start)\n\n"
"Recompute the chain over positions lo < p <= hi of a SQLite store from the\n"
"32-byte value ``start`` and compare it with every stored chain row. Not\n"
"stopped: all of it holds and (records, first, last, head) describe it.\n"
"Stopped: something in the page (page_start, page_start + page] disagrees\n"
"with this form; the state returned is as of page_start, every record before\n"
"it held. Raises OSError when the store cannot be read at all.");

static PyObject *verify_sqlite(PyObject *self, PyObject *args) {
    const char *path, *table;
    long long lo, hi, page;
    Py_buffer start;
    if (!PyArg_ParseTuple(args, "ssLLy*L", &path, &table, &lo, &hi, &start, &page))
        return NULL;
    if (start.len != HASH || page < 1 || strlen(table) > 200 || strchr(table, '"')) {
        PyBuffer_Release(&start);
        PyErr_SetString(PyExc_ValueError, "start must be 32 bytes, page >= 1, a plain table name");
        return NULL;
    }
    Outcome out;
    memset(&out, 0, sizeof out);
    memcpy(out.done.head, start.buf, HASH);
    out.done.last = lo;
    PyBuffer_Release(&start);
    Py_BEGIN_ALLOW_THREADS
    verify_range(path, table, lo, hi, page, &out);
    Py_END_ALLOW_THREADS
    if (out.open_error) {
        PyErr_SetString(PyExc_OSError, out.message);
        return NULL;
    }
    return Py_BuildValue("(LLLy#OL)", out.done.records, out.done.first, out.done.last,
                         (const char *)out.done.head, (Py_ssize_t)HASH,
                         out.stopped ? Py_True : Py_False, out.page_start);
}

PyDoc_STRVAR(link_all_doc,
"link_all(start, leaves) -> bytes\n\n"
"The chain values over concatenated 32-byte leaf digests, from ``start``:\n"
"value(i) = sha256(value(i - 1) || leaf(i)), all of them concatenated.");

static PyObject *link_all(PyObject *self, PyObject *args) {
    Py_buffer start, leaves;
    if (!PyArg_ParseTuple(args, "y*y*", &start, &leaves))
        return NULL;
    if (start.len != HASH || leaves.len % HASH) {
        PyBuffer_Release(&start);
        PyBuffer_Release(&leaves);
        PyErr_SetString(PyExc_ValueError, "start must be 32 bytes and leaves a multiple of 32");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, leaves.len);
    if (result != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        const unsigned char *src = leaves.buf, *prev = start.buf;
        Py_ssize_t n = leaves.len / HASH;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            link2(prev, src + i * HASH, dst + i * HASH);
            prev = dst + i * HASH;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&start);
    PyBuffer_Release(&leaves);
    return result;
}

static PyMethodDef methods[] = {
    {"verify_sqlite", verify_sqlite, METH_VARARGS, verify_sqlite_doc},
    {"link_all", link_all, METH_VARARGS, link_all_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "queries._fastchain",
    "The audit chain's hot loop in C (optional; see queries/audit_trail.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__fastchain(void) { return PyModule_Create(&module); }
