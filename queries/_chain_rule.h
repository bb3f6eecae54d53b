/* The audit chain's record rule, shared by the SQLite (_fastchain.c) and
 * PostgreSQL (_fastchain_pg.c) fast paths: the C form of
 * commands/event_store.py canonical(), occurred_at_text() and link().
 *
 *     leaf(p)  = sha256(p 0x1F aggregate-id 0x1F version 0x1F topic 0x1F occurred_at 0x1F payload)
 *     chain(p) = sha256(chain(previous) || leaf(p))
 *
 * Include after <Python.h>, <openssl/sha.h> and <string.h>, with _GNU_SOURCE
 * (memmem) and OPENSSL_SUPPRESS_DEPRECATED defined.
 */
#ifndef LIANXIN_CHAIN_RULE_H
#define LIANXIN_CHAIN_RULE_H

/* commands.event_store.OCCURRED_MARK and OCCURRED_WINDOW */
static const char MARK[] = "\"occurred_at\":{\"_type_\":\"datetime_iso\",\"_data_\":\"";
#define MARK_LEN (sizeof(MARK) - 1)
#define WINDOW 40
#define HASH 32
/* The fixed part of a record head: two decimals and five separators fit. */
#define HEAD_MAX 640

typedef struct {
    long long records, first, last;
    unsigned char head[HASH];
} State;

/* The source time's bytes, by the byte rule of commands.event_store.occurred_at_text. */
static size_t occurred(const unsigned char *state, size_t n, const unsigned char **out) {
    const unsigned char *p = memmem(state, n, MARK, MARK_LEN);
    if (p == NULL) {
        *out = (const unsigned char *)"";
        return 0;
    }
    p += MARK_LEN;
    size_t left = (size_t)((state + n) - p);
    size_t w = left < WINDOW ? left : WINDOW;
    const unsigned char *q = memchr(p, '"', w);
    *out = p;
    return q ? (size_t)(q - p) : w;
}

/* sha256(a || b) of two 32-byte values: the link. */
static void link2(const unsigned char *a, const unsigned char *b, unsigned char *out) {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, a, HASH);
    SHA256_Update(&c, b, HASH);
    SHA256_Final(out, &c);
}

/* Decimal ASCII of v at dst (what Python's b"%d" gives); returns its length.
 * snprintf costs more than the sha256 of a short record. */
static int decimal(char *dst, long long v) {
    char tmp[24];
    int n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        dst[len++] = '-';
    while (n)
        dst[len++] = tmp[--n];
    return len;
}

/* The leaf of one record whose aggregate id is given as its hex text; 0 when
 * the record is not one the application wrote (too long a head), so that the
 * Python verifier decides it. */
static int leaf_of_record(long long pos, const unsigned char *id, size_t id_len,
                          long long version, const unsigned char *topic, size_t topic_len,
                          const unsigned char *state, size_t state_len, unsigned char *leaf) {
    const unsigned char *occ;
    size_t occ_len = occurred(state, state_len, &occ);
    char head[HEAD_MAX];
    if (id_len + topic_len + occ_len + 64 > sizeof head)
        return 0;
    size_t n = (size_t)decimal(head, pos);
    head[n++] = 0x1f;
    memcpy(head + n, id, id_len);
    n += id_len;
    head[n++] = 0x1f;
    n += (size_t)decimal(head + n, version);
    head[n++] = 0x1f;
    memcpy(head + n, topic, topic_len);
    n += topic_len;
    head[n++] = 0x1f;
    memcpy(head + n, occ, occ_len);
    n += occ_len;
    head[n++] = 0x1f;
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, head, n);
    SHA256_Update(&c, state, state_len);
    SHA256_Final(leaf, &c);
    return 1;
}

#endif
