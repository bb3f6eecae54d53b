/* The audit chain's hot loop in C for PostgreSQL: an optional fast path for
 * queries/audit_trail.py, a separate module from queries/_fastchain.c (the
 * SQLite one) so that a machine without libpq still gets that one. Built by
 * setup.py when a compiler, libpq-fe.h and OpenSSL's headers are there;
 * without it PostgreSQL is verified by the Python verifier (server-side
 * leaves, C links when queries._fastchain exists).
 *
 * It reads the events and the chain rows of a range with libpq, page by page
 * (`COPY (SELECT ...) TO STDOUT (FORMAT binary)`, one REPEATABLE READ, READ
 * ONLY transaction per call), builds each record's canonical bytes exactly as
 * commands/event_store.py canonical() does,
 *
 *     leaf(p)  = sha256(p 0x1F aggregate-id 0x1F version 0x1F topic 0x1F occurred_at 0x1F payload)
 *     chain(p) = sha256(chain(previous) || leaf(p))
 *
 * hashes both client-side with OpenSSL's direct SHA256 functions and compares
 * every stored chain value, with the GIL released. Like the SQLite module it
 * decides nothing: at the first page where its form and the stored chain
 * disagree (or a value is not of the type the application writes, or a read
 * fails) it stops and reports the state at the start of that page, and the
 * Python verifier reads that page and names the finding (or clears a false
 * alarm). Verdicts are therefore the Python verifier's.
 */
#define PY_SSIZE_T_CLEAN
/* SHA256_Init/Update/Final: deprecated in OpenSSL 3 but direct (see _fastchain.c). */
#define OPENSSL_SUPPRESS_DEPRECATED
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <Python.h>
#include <libpq-fe.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_chain_rule.h"

#define MAX_PARAMS 32

/* The binary COPY header: signature, flags, header extension length. */
static const char SIGNATURE[11] = "PGCOPY\n\377\r\n\0";
#define COPY_HEADER 19

typedef struct {
    State done;           /* the verified state; when stopped, as of page_start */
    long long page_start; /* the page the Python verifier must decide (when stopped) */
    int stopped;
    int open_error; /* the store could not be connected to or queried at all */
    char message[256];
} Outcome;

typedef struct { /* the stored chain rows of one page */
    long long *pos;
    unsigned char *hash;
    size_t n, cap;
} ChainPage;

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static long long be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return (long long)v;
}

/* One field of a binary COPY tuple at *off in buf[0..len): its data and
 * length (-1: NULL). 0 when the tuple does not fit in this message. */
static int field(const unsigned char *buf, size_t len, size_t *off, const unsigned char **data,
                 long *flen) {
    if (*off + 4 > len)
        return 0;
    int32_t n = (int32_t)be32(buf + *off);
    *off += 4;
    if (n < 0) {
        *data = NULL;
        *flen = -1;
        return 1;
    }
    if (*off + (size_t)n > len)
        return 0;
    *data = buf + *off;
    *flen = n;
    *off += (size_t)n;
    return 1;
}

/* The leaf of one events tuple; 0 when its values are not what the
 * application writes (the Python verifier then looks at the record). */
static int leaf_of(long long pos, const unsigned char *id, long id_len, long long version,
                   const unsigned char *topic, long topic_len, const unsigned char *state,
                   long state_len, unsigned char *leaf) {
    static const char hexd[] = "0123456789abcdef";
    if (id_len != 16 || topic == NULL || state == NULL)
        return 0;
    char hex[32];
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = hexd[id[i] >> 4];
        hex[2 * i + 1] = hexd[id[i] & 15];
    }
    return leaf_of_record(pos, (const unsigned char *)hex, sizeof hex, version, topic,
                          (size_t)topic_len, state, (size_t)state_len, leaf);
}

/* Start a COPY ... TO STDOUT; 1 when the server is sending rows. */
static int copy_start(PGconn *conn, const char *sql) {
    PGresult *r = PQexec(conn, sql);
    int ok = PQresultStatus(r) == PGRES_COPY_OUT;
    PQclear(r);
    return ok;
}

/* After the last CopyData: the command's own result must be a success. */
static int copy_finish(PGconn *conn) {
    int ok = 1;
    PGresult *r;
    while ((r = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            ok = 0;
        PQclear(r);
    }
    return ok;
}

/* Walk the tuples of one COPY, calling row(ctx, buf, len, &off) for each;
 * row returns 0 to stop. Returns 1 when the whole COPY was read and every
 * row accepted, 0 otherwise (the connection is then in the middle of a COPY
 * and is closed by the caller). */
typedef int (*RowFn)(void *ctx, const unsigned char *buf, size_t len, size_t *off);

static int copy_rows(PGconn *conn, int fields, RowFn row, void *ctx) {
    char *msg;
    int len, header = 1, trailer = 0;
    while ((len = PQgetCopyData(conn, &msg, 0)) > 0) {
        const unsigned char *buf = (const unsigned char *)msg;
        size_t off = 0, n = (size_t)len;
        if (header) {
            if (n < COPY_HEADER || memcmp(buf, SIGNATURE, 11) != 0) {
                PQfreemem(msg);
                return 0;
            }
            off = COPY_HEADER + be32(buf + 15); /* skip the header extension */
            header = 0;
        }
        while (off < n) {
            if (trailer || off + 2 > n) {
                PQfreemem(msg);
                return 0;
            }
            int16_t count = (int16_t)(((unsigned)buf[off] << 8) | buf[off + 1]);
            off += 2;
            if (count == -1) {
                trailer = 1;
                continue;
            }
            if (count != fields || !row(ctx, buf, n, &off)) {
                PQfreemem(msg);
                return 0;
            }
        }
        PQfreemem(msg);
    }
    if (len != -1 || !trailer)
        return 0;
    return copy_finish(conn);
}

static int chain_row(void *ctx, const unsigned char *buf, size_t len, size_t *off) {
    ChainPage *cp = ctx;
    const unsigned char *p, *h;
    long pl, hl;
    if (!field(buf, len, off, &p, &pl) || !field(buf, len, off, &h, &hl) || pl != 8 || hl != HASH)
        return 0;
    if (cp->n == cp->cap) {
        size_t cap = cp->cap ? cp->cap * 2 : 1024;
        long long *pos = realloc(cp->pos, cap * sizeof *pos);
        if (pos == NULL)
            return 0;
        cp->pos = pos;
        unsigned char *hash = realloc(cp->hash, cap * HASH);
        if (hash == NULL)
            return 0;
        cp->hash = hash;
        cp->cap = cap;
    }
    cp->pos[cp->n] = be64(p);
    memcpy(cp->hash + cp->n * HASH, h, HASH);
    cp->n++;
    return 1;
}

typedef struct {
    ChainPage *chain;
    size_t next; /* the chain row the next event must match */
    State now;
} EventWalk;

static int event_row(void *ctx, const unsigned char *buf, size_t len, size_t *off) {
    EventWalk *w = ctx;
    const unsigned char *p, *id, *v, *topic, *state;
    long pl, idl, vl, tl, sl;
    if (!field(buf, len, off, &p, &pl) || !field(buf, len, off, &id, &idl)
        || !field(buf, len, off, &v, &vl) || !field(buf, len, off, &topic, &tl)
        || !field(buf, len, off, &state, &sl) || pl != 8 || vl != 8)
        return 0;
    long long pos = be64(p);
    if (w->next >= w->chain->n || w->chain->pos[w->next] != pos)
        return 0; /* an event without its chain row here, or a chain row without its event */
    unsigned char leaf[HASH], next[HASH];
    if (!leaf_of(pos, id, idl, be64(v), topic, tl, state, sl, leaf))
        return 0;
    link2(w->now.head, leaf, next);
    if (memcmp(next, w->chain->hash + w->next * HASH, HASH) != 0)
        return 0;
    memcpy(w->now.head, next, HASH);
    w->now.records++;
    if (!w->now.first)
        w->now.first = pos;
    w->now.last = pos;
    w->next++;
    return 1;
}

/* One page (a, b]: 1 when every record and chain row of it holds by this form. */
static int page_holds(PGconn *conn, const char *events, const char *chain, long long a,
                      long long b, ChainPage *cp, State *now) {
    char sql[1024];
    cp->n = 0;
    snprintf(sql, sizeof sql,
             "COPY (SELECT position, chain_hash FROM %s WHERE position > %lld AND position <= "
             "%lld ORDER BY position) TO STDOUT (FORMAT binary)", chain, a, b);
    if (!copy_start(conn, sql) || !copy_rows(conn, 2, chain_row, cp))
        return 0;
    snprintf(sql, sizeof sql,
             "COPY (SELECT notification_id, originator_id, originator_version, topic, state "
             "FROM %s WHERE notification_id > %lld AND notification_id <= %lld "
             "ORDER BY notification_id) TO STDOUT (FORMAT binary)", events, a, b);
    EventWalk w = {cp, 0, *now};
    if (!copy_start(conn, sql) || !copy_rows(conn, 5, event_row, &w) || w.next != cp->n)
        return 0;
    *now = w.now;
    return 1;
}

static char *qualified(PGconn *conn, const char *schema, const char *table, const char *suffix) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", table, suffix);
    char *s = PQescapeIdentifier(conn, schema, strlen(schema));
    char *t = PQescapeIdentifier(conn, name, strlen(name));
    char *out = NULL;
    if (s && t && (out = malloc(strlen(s) + strlen(t) + 2)) != NULL)
        sprintf(out, "%s.%s", s, t);
    PQfreemem(s);
    PQfreemem(t);
    return out;
}

static void verify_range(const char *const *keys, const char *const *values, const char *schema,
                         const char *table, long long lo, long long hi, long long page,
                         Outcome *out) {
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    char *events = NULL, *chain = NULL;
    ChainPage cp = {NULL, NULL, 0, 0};
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        snprintf(out->message, sizeof out->message, "cannot connect: %s",
                 conn ? PQerrorMessage(conn) : "out of memory");
        out->open_error = 1;
        goto done;
    }
    /* One snapshot for the whole span. enable_sort off: the planner then
     * walks each page by the position index (already in order) instead of a
     * bitmap scan and a sort, a third of the server's time per record when
     * the table has no statistics yet. A planner setting, never a result. */
    PGresult *r = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                               "SET LOCAL enable_sort = off");
    int begun = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    events = qualified(conn, schema, table, "");
    chain = qualified(conn, schema, table, "_chain");
    if (!begun || events == NULL || chain == NULL) {
        snprintf(out->message, sizeof out->message, "cannot read: %s", PQerrorMessage(conn));
        out->open_error = 1;
        goto done;
    }
    State now = out->done;
    for (long long a = lo; a < hi; a += page) {
        long long b = a + page < hi ? a + page : hi;
        out->page_start = a;
        if (!page_holds(conn, events, chain, a, b, &cp, &now)) {
            out->stopped = 1; /* the Python verifier decides (a, a + page] */
            goto done;
        }
        out->done = now;
    }
    out->page_start = hi;
done:
    free(cp.pos);
    free(cp.hash);
    free(events);
    free(chain);
    PQfinish(conn); /* also ends a COPY left in the middle */
}

PyDoc_STRVAR(verify_postgres_doc,
"verify_postgres(conninfo, schema, table, lo, hi, start, page)\n"
"    -> (records, first, last, head, stopped, page_start)\n\n"
"Recompute the chain over positions lo < p <= hi of a PostgreSQL store (its\n"
"own connection; ``conninfo``: a sequence of (libpq keyword, value) pairs)\n"
"from the 32-byte value ``start`` and compare it with every stored chain\n"
"row, page by page (lo, lo + page], ... Not stopped: all of it holds and\n"
"(records, first, last, head) describe it. Stopped: something in the page\n"
"(page_start, page_start + page] disagrees with this form (or could not be\n"
"read); the state returned is as of page_start, every record before it\n"
"held. Raises OSError when the store cannot be connected to at all.");

static PyObject *verify_postgres(PyObject *self, PyObject *args) {
    PyObject *info;
    const char *schema, *table;
    long long lo, hi, page;
    Py_buffer start;
    if (!PyArg_ParseTuple(args, "OssLLy*L", &info, &schema, &table, &lo, &hi, &start, &page))
        return NULL;
    PyObject *seq = PySequence_Fast(info, "conninfo must be a sequence of (keyword, value) pairs");
    if (seq == NULL) {
        PyBuffer_Release(&start);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (start.len != HASH || page < 1 || n > MAX_PARAMS || strlen(table) > 200) {
        Py_DECREF(seq);
        PyBuffer_Release(&start);
        PyErr_SetString(PyExc_ValueError,
                        "start must be 32 bytes, page >= 1, at most 32 connection parameters");
        return NULL;
    }
    /* Copies: the strings are used with the GIL released. */
    char *keys[MAX_PARAMS + 1] = {NULL}, *values[MAX_PARAMS + 1] = {NULL};
    int failed = 0;
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        const char *k, *v;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "ss", &k, &v)) {
            failed = 1;
            break;
        }
        keys[i] = strdup(k);
        values[i] = strdup(v);
        if (keys[i] == NULL || values[i] == NULL) {
            PyErr_NoMemory();
            failed = 1;
        }
    }
    Py_DECREF(seq);
    char *schema_c = failed ? NULL : strdup(schema), *table_c = failed ? NULL : strdup(table);
    PyObject *result = NULL;
    if (!failed && (schema_c == NULL || table_c == NULL)) {
        PyErr_NoMemory();
        failed = 1;
    }
    if (!failed) {
        Outcome out;
        memset(&out, 0, sizeof out);
        memcpy(out.done.head, start.buf, HASH);
        out.done.last = lo;
        Py_BEGIN_ALLOW_THREADS
        verify_range((const char *const *)keys, (const char *const *)values, schema_c, table_c,
                     lo, hi, page, &out);
        Py_END_ALLOW_THREADS
        if (out.open_error)
            PyErr_SetString(PyExc_OSError, out.message);
        else
            result = Py_BuildValue("(LLLy#OL)", out.done.records, out.done.first, out.done.last,
                                   (const char *)out.done.head, (Py_ssize_t)HASH,
                                   out.stopped ? Py_True : Py_False, out.page_start);
    }
    for (int i = 0; i < MAX_PARAMS; i++) {
        free(keys[i]);
        free(values[i]);
    }
    free(schema_c);
    free(table_c);
    PyBuffer_Release(&start);
    return result;
}

static PyMethodDef methods[] = {
    {"verify_postgres", verify_postgres, METH_VARARGS, verify_postgres_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "queries._fastchain_pg",
    "The audit chain's hot loop in C over libpq (optional; see queries/audit_trail.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__fastchain_pg(void) { return PyModule_Create(&module); }
