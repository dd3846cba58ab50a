/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Anti-entropy (docs/PROTOCOL.md, "Anti-entropy"): two peers that both said
 * "antiEntropy": true in HELLO compare their stores now and then, whatever
 * the cursors say, and repair what differs. Records sit in a tree by the
 * hex digits of SHA-256(id); a node of the tree is a prefix of those digits
 * and its digest the sum (mod 2^256) of its records' digest terms, as the
 * store digest. The side with the smaller node id sends the root (AE_TREE);
 * a side that gets digests compares them with its own, answers with the
 * children of the prefixes that differ, or, once a prefix holds few records
 * (or is 6 digits long), with its records there (AE_IDS: id, version,
 * checksum). A side that sees the peer lacks a record, or holds an older
 * version or another checksum, puts it at the end of its change log again
 * (ags_store_relog): the normal sender sends it, and the peer applies it
 * with the normal rules. Only the records that differ and O(log n) digests
 * travel. Everything here runs on the sessions' thread; reads go through
 * the host's log_store (no lock), the relog through its store (under the
 * lock).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yyjson.h>

#include "frame.h"
#include "store.h"
#include "sync.h"
#include "sync_int.h"

#define AE_INTERVAL_DEFAULT_MS 60000u
#define AE_FIRST_DELAY_US      1000000u /* after HELLO, and after a busy answer */
#define AE_LEAF                64       /* at most this many records: send the records */
#define AE_DEPTH_MAX           6        /* hex digits of the deepest prefix */
#define AE_LEAF_MAX            256      /* records of one prefix in AE_IDS */
#define AE_D_BYTES             16       /* digest bytes compared (sent as 32 hex digits) */
#define AE_H_BYTES             8        /* bytes of a record's digest term in AE_IDS */
#define AE_FRAME_ITEMS_MAX     65536    /* nodes of an AE_TREE, leaves or entries of an AE_IDS */

static const char hexd[] = "0123456789abcdef";

static void hexn(const uint8_t *d, size_t n, char *out);

int ags_sync_ae_enabled(const ags_sync *s)
{
	return s->role == AGS_SYNC_ROLE_PEER && !s->h->no_anti_entropy && s->peer_ae &&
	       !s->h->n_filter_types && !s->h->n_filter_tags && !s->n_f_types && !s->n_f_tags;
}

/* The first `len` hex digits of h as a number. */
static uint32_t prefix_of(const uint8_t h[32], int len)
{
	uint32_t v = 0;
	for (int i = 0; i < len; i++)
		v = (v << 4) | ((h[i / 2] >> (i % 2 ? 0 : 4)) & 0xf);
	return v;
}

/* Parses a prefix of hex digits (0..AE_DEPTH_MAX); -1 when it is not one. */
static int prefix_parse(const char *p, uint32_t *v)
{
	size_t n = strlen(p);
	if (n > AE_DEPTH_MAX)
		return -1;
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		const char *d = strchr(hexd, p[i]);
		if (!p[i] || !d)
			return -1;
		*v = (*v << 4) | (uint32_t)(d - hexd);
	}
	return (int)n;
}

/* A set of prefixes, each with our digest, count and (for leaves) records. */
struct ae_node {
	int len;
	uint32_t v;
	uint8_t d[32];
	uint64_t n;
	yyjson_mut_val *e; /* AE_IDS: our entries under it */
};

struct ae_scan {
	struct ae_node *nodes; /* sorted by (len, v) */
	size_t n;
	yyjson_mut_doc *doc; /* non-NULL: collect the records of each node */
	int lens[AE_DEPTH_MAX + 1];
	int n_lens;
};

static int node_cmp(const void *a, const void *b)
{
	const struct ae_node *x = a, *y = b;
	if (x->len != y->len)
		return x->len - y->len;
	return x->v < y->v ? -1 : x->v > y->v;
}

static int scan_row(void *ud, const ags_ae_row *r)
{
	struct ae_scan *sc = ud;
	for (int k = 0; k < sc->n_lens; k++) {
		struct ae_node key = {.len = sc->lens[k], .v = prefix_of(r->hid, sc->lens[k])};
		struct ae_node *nd = bsearch(&key, sc->nodes, sc->n, sizeof(*nd), node_cmp);
		if (!nd)
			continue;
		ags_store_digest_add(nd->d, r->term);
		nd->n++;
		if (sc->doc && nd->e && nd->n <= AE_LEAF_MAX) {
			char h[2 * AE_H_BYTES + 1];
			hexn(r->term, AE_H_BYTES, h);
			yyjson_mut_val *o = yyjson_mut_obj(sc->doc);
			if (!o || !yyjson_mut_obj_add_strcpy(sc->doc, o, "id", r->id) ||
			    !yyjson_mut_obj_add_int(sc->doc, o, "v", r->version) ||
			    !yyjson_mut_obj_add_strcpy(sc->doc, o, "h", h) ||
			    !yyjson_mut_arr_append(nd->e, o))
				return AGS_ERR_NOMEM;
		}
	}
	return 0;
}

/* Our digests (and with doc, records) of the nodes; sorts them. 0 or an error. */
static int scan(ags_sync *s, struct ae_scan *sc)
{
	qsort(sc->nodes, sc->n, sizeof(*sc->nodes), node_cmp);
	sc->n_lens = 0;
	for (size_t i = 0; i < sc->n; i++) {
		memset(sc->nodes[i].d, 0, 32);
		sc->nodes[i].n = 0;
		if (!sc->n_lens || sc->lens[sc->n_lens - 1] != sc->nodes[i].len)
			sc->lens[sc->n_lens++] = sc->nodes[i].len;
	}
	if (s->h->log_store)
		return ags_store_ae_rows(s->h->log_store, scan_row, sc);
	pthread_mutex_lock(s->h->store_mu);
	int rv = ags_store_ae_rows(s->h->store, scan_row, sc);
	pthread_mutex_unlock(s->h->store_mu);
	return rv;
}

static void prefix_text(const struct ae_node *nd, char out[AE_DEPTH_MAX + 1])
{
	for (int i = 0; i < nd->len; i++)
		out[i] = hexd[(nd->v >> (4 * (nd->len - 1 - i))) & 0xf];
	out[nd->len] = '\0';
}

static void hexn(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexd[d[i] >> 4];
		out[2 * i + 1] = hexd[d[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/* Sends a JSON document as one frame of `type`; frees it. 0 or an error. */
static int send_doc(ags_sync *s, uint8_t type, yyjson_mut_doc *doc)
{
	size_t len = 0;
	char *json = yyjson_mut_write(doc, 0, &len);
	yyjson_mut_doc_free(doc);
	if (!json)
		return AGS_ERR_NOMEM;
	ags_frame_buf b;
	ags_frame_buf_init(&b, 0);
	int rv = ags_frame_append(&b, type, json, len);
	free(json);
	if (rv) {
		ags_frame_buf_free(&b);
		return rv;
	}
	s->st.ae_bytes_out += b.len;
	ags_sync_send_buf(s, &b);
	return 0;
}

/* Entries per frame: what the peer's max frame holds, about 100 bytes each. */
static size_t per_frame(const ags_sync *s, size_t each)
{
	size_t m = s->peer_max_frame ? s->peer_max_frame : AGS_FRAME_MAX_MIN;
	size_t n = m / 2 / each;
	return n < 16 ? 16 : n > 8192 ? 8192 : n;
}

/* Sends our digests of the nodes (scanned) in AE_TREE frames. */
static int send_tree(ags_sync *s, const struct ae_node *nodes, size_t n, int busy)
{
	size_t step = per_frame(s, 100);
	size_t i = 0;
	do {
		yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
		yyjson_mut_val *root = doc ? yyjson_mut_obj(doc) : NULL;
		yyjson_mut_val *arr = root ? yyjson_mut_arr(doc) : NULL;
		if (!arr) {
			yyjson_mut_doc_free(doc);
			return AGS_ERR_NOMEM;
		}
		yyjson_mut_doc_set_root(doc, root);
		for (size_t k = 0; k < step && i < n; k++, i++) {
			char p[AE_DEPTH_MAX + 1], d[2 * AE_D_BYTES + 1];
			prefix_text(&nodes[i], p);
			hexn(nodes[i].d, AE_D_BYTES, d);
			yyjson_mut_val *o = yyjson_mut_obj(doc);
			if (!o || !yyjson_mut_obj_add_strcpy(doc, o, "p", p) ||
			    !yyjson_mut_obj_add_strcpy(doc, o, "d", d) ||
			    !yyjson_mut_obj_add_uint(doc, o, "n", nodes[i].n) ||
			    !yyjson_mut_arr_append(arr, o)) {
				yyjson_mut_doc_free(doc);
				return AGS_ERR_NOMEM;
			}
		}
		if (!yyjson_mut_obj_add_val(doc, root, "nodes", arr) ||
		    (busy && !yyjson_mut_obj_add_bool(doc, root, "busy", true))) {
			yyjson_mut_doc_free(doc);
			return AGS_ERR_NOMEM;
		}
		int rv = send_doc(s, AGS_FRAME_AE_TREE, doc);
		if (rv)
			return rv;
	} while (i < n);
	return 0;
}

/* Sends our records under the leaves in AE_IDS frames (reply: the peer answers not). */
static int send_ids(ags_sync *s, struct ae_node *leaves, size_t n, int reply)
{
	size_t step = per_frame(s, 100 * AE_LEAF);
	for (size_t i = 0; i < n;) {
		yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
		yyjson_mut_val *root = doc ? yyjson_mut_obj(doc) : NULL;
		yyjson_mut_val *arr = root ? yyjson_mut_arr(doc) : NULL;
		if (!arr) {
			yyjson_mut_doc_free(doc);
			return AGS_ERR_NOMEM;
		}
		yyjson_mut_doc_set_root(doc, root);
		struct ae_scan sc = {
		    .nodes = leaves + i, .n = n - i < step ? n - i : step, .doc = doc};
		for (size_t k = 0; k < sc.n; k++)
			if (!(sc.nodes[k].e = yyjson_mut_arr(doc))) {
				yyjson_mut_doc_free(doc);
				return AGS_ERR_NOMEM;
			}
		int rv = scan(s, &sc);
		for (size_t k = 0; rv == 0 && k < sc.n; k++) {
			char p[AE_DEPTH_MAX + 1];
			prefix_text(&sc.nodes[k], p);
			yyjson_mut_val *o = yyjson_mut_obj(doc);
			if (!o || !yyjson_mut_obj_add_strcpy(doc, o, "p", p) ||
			    !yyjson_mut_obj_add_val(doc, o, "e", sc.nodes[k].e) ||
			    !yyjson_mut_arr_append(arr, o))
				rv = AGS_ERR_NOMEM;
			sc.nodes[k].e = NULL;
		}
		if (rv == 0 && (!yyjson_mut_obj_add_val(doc, root, "leaves", arr) ||
		                !yyjson_mut_obj_add_bool(doc, root, "reply", reply)))
			rv = AGS_ERR_NOMEM;
		if (rv) {
			yyjson_mut_doc_free(doc);
			return rv;
		}
		if ((rv = send_doc(s, AGS_FRAME_AE_IDS, doc)))
			return rv;
		i += sc.n;
	}
	return 0;
}

void ags_sync_ae_hello(ags_sync *s, uint64_t now_us)
{
	s->ae_next_us = now_us + AE_FIRST_DELAY_US;
}

void ags_sync_ae_pump(ags_sync *s, uint64_t now_us)
{
	if (!s->hello_recv || !ags_sync_ae_enabled(s) || now_us < s->ae_next_us || s->jobs ||
	    strcmp(s->h->node_id, s->peer_id) >= 0)
		return;
	if (!ags_sync_push_idle(s))
		return; /* compare once our side of the log is sent */
	uint32_t every = s->h->ae_interval_ms ? s->h->ae_interval_ms : AE_INTERVAL_DEFAULT_MS;
	s->ae_next_us = now_us + (uint64_t)every * 1000u;
	struct ae_node root = {0};
	struct ae_scan sc = {.nodes = &root, .n = 1};
	if (scan(s, &sc) != 0 || send_tree(s, &root, 1, 0) != 0)
		return;
	s->st.ae_rounds++;
}

/* Fails a frame: PROTOCOL_ERROR naming the member. */
static int bad(const char *frame, const char *what, uint64_t *code, char *reason, size_t cap)
{
	*code = AGS_APP_PROTOCOL_ERROR;
	snprintf(reason, cap, "bad %s: %s", frame, what);
	return AGS_ERR_PROTO;
}

int ags_sync_on_ae_tree(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now_us,
                        uint64_t *code, char *reason, size_t cap)
{
	s->st.ae_bytes_in += len + AGS_FRAME_HEADER_LEN;
	yyjson_doc *doc = yyjson_read((const char *)payload, len, 0);
	yyjson_val *root = doc ? yyjson_doc_get_root(doc) : NULL;
	yyjson_val *arr = yyjson_obj_get(root, "nodes");
	if (!yyjson_is_obj(root) || !yyjson_is_arr(arr)) {
		yyjson_doc_free(doc);
		return bad("AE_TREE", "nodes must be an array", code, reason, cap);
	}
	if (yyjson_is_true(yyjson_obj_get(root, "busy"))) {
		/* The peer is still sending its log: try again shortly. */
		s->ae_next_us = now_us + AE_FIRST_DELAY_US;
		yyjson_doc_free(doc);
		return 0;
	}
	size_t n = yyjson_arr_size(arr);
	if (n > AE_FRAME_ITEMS_MAX) {
		yyjson_doc_free(doc);
		return bad("AE_TREE", "more than 65536 nodes", code, reason, cap);
	}
	struct ae_node *mine = calloc(n ? n : 1, sizeof(*mine));
	struct ae_node *peer = calloc(n ? n : 1, sizeof(*peer));
	if (!mine || !peer) {
		free(mine);
		free(peer);
		yyjson_doc_free(doc);
		*code = AGS_APP_INTERNAL_ERROR;
		snprintf(reason, cap, "out of memory");
		return AGS_ERR_NOMEM;
	}
	int rv = 0;
	size_t i = 0, idx, max;
	yyjson_val *o;
	yyjson_arr_foreach(arr, idx, max, o)
	{
		const char *p = yyjson_get_str(yyjson_obj_get(o, "p"));
		const char *d = yyjson_get_str(yyjson_obj_get(o, "d"));
		yyjson_val *nv = yyjson_obj_get(o, "n");
		int l = p ? prefix_parse(p, &peer[i].v) : -1;
		if (l < 0 || !d || strlen(d) != 2 * AE_D_BYTES || !yyjson_is_uint(nv)) {
			rv = bad("AE_TREE", "each node needs p (0-6 hex digits), d (32 hex), n",
			         code, reason, cap);
			break;
		}
		peer[i].len = l;
		peer[i].n = yyjson_get_uint(nv);
		for (int k = 0; k < AE_D_BYTES; k++) {
			const char *h = strchr(hexd, d[2 * k]), *lo = strchr(hexd, d[2 * k + 1]);
			if (!d[2 * k] || !d[2 * k + 1] || !h || !lo) {
				rv = bad("AE_TREE", "d must be 32 lowercase hex digits", code,
				         reason, cap);
				break;
			}
			peer[i].d[k] = (uint8_t)(((h - hexd) << 4) | (lo - hexd));
		}
		if (rv)
			break;
		mine[i] = peer[i];
		i++;
	}
	yyjson_doc_free(doc);
	if (rv) {
		free(mine);
		free(peer);
		return rv;
	}
	if (n == 1 && peer[0].len == 0 && !ags_sync_push_idle(s)) {
		/* Asked for the root while we still send our log: it would differ for that. */
		struct ae_node r = {0};
		free(mine);
		free(peer);
		(void)send_tree(s, &r, 1, 1);
		return 0;
	}
	struct ae_scan sc = {.nodes = mine, .n = n};
	qsort(peer, n, sizeof(*peer), node_cmp);
	if (scan(s, &sc) != 0) {
		free(mine);
		free(peer);
		return 0; /* our store failed to read: no repair this time */
	}
	/* mine and peer are both sorted by (len, v) now, entry for entry. */
	struct ae_node *leaves = calloc(n ? n : 1, sizeof(*leaves));
	struct ae_node *kids = calloc(n ? 16 * n : 1, sizeof(*kids));
	size_t nl = 0, nk = 0, differ = 0;
	for (size_t k = 0; leaves && kids && k < n; k++) {
		if (mine[k].n == peer[k].n && memcmp(mine[k].d, peer[k].d, AE_D_BYTES) == 0)
			continue;
		differ++;
		if (mine[k].len >= AE_DEPTH_MAX || (mine[k].n <= AE_LEAF && peer[k].n <= AE_LEAF)) {
			leaves[nl++] = mine[k];
		} else {
			for (uint32_t c = 0; c < 16; c++) {
				kids[nk].len = mine[k].len + 1;
				kids[nk].v = (mine[k].v << 4) | c;
				nk++;
			}
		}
	}
	if (n == 1 && peer[0].len == 0 && !differ)
		ags_sync_log(s, AGS_LOG_DEBUG, "anti-entropy with %s: stores equal (%llu records)",
		             s->peer_id, (unsigned long long)mine[0].n);
	free(mine);
	free(peer);
	if (!leaves || !kids) {
		free(leaves);
		free(kids);
		return 0;
	}
	if (nk) {
		struct ae_scan kc = {.nodes = kids, .n = nk};
		if (scan(s, &kc) == 0)
			(void)send_tree(s, kids, nk, 0);
	}
	if (nl)
		(void)send_ids(s, leaves, nl, 0);
	free(leaves);
	free(kids);
	return 0;
}

/* One record the peer listed. */
struct peer_rec {
	const char *id, *c; /* c: the digest term's first bytes, hex ("h") */
	int64_t v;
	int seen, same; /* we hold it; ours is the same or newer */
};

static int rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct peer_rec *)a)->id, ((const struct peer_rec *)b)->id);
}

int ags_sync_on_ae_ids(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now_us,
                       uint64_t *code, char *reason, size_t cap)
{
	(void)now_us;
	s->st.ae_bytes_in += len + AGS_FRAME_HEADER_LEN;
	yyjson_doc *doc = yyjson_read((const char *)payload, len, 0);
	yyjson_val *root = doc ? yyjson_doc_get_root(doc) : NULL;
	yyjson_val *arr = yyjson_obj_get(root, "leaves");
	if (!yyjson_is_obj(root) || !yyjson_is_arr(arr)) {
		yyjson_doc_free(doc);
		return bad("AE_IDS", "leaves must be an array", code, reason, cap);
	}
	int reply = yyjson_is_true(yyjson_obj_get(root, "reply"));
	size_t n = yyjson_arr_size(arr), total = 0, idx, max;
	yyjson_val *o;
	yyjson_arr_foreach(arr, idx, max, o) total += yyjson_arr_size(yyjson_obj_get(o, "e"));
	if (n > AE_FRAME_ITEMS_MAX || total > AE_FRAME_ITEMS_MAX) {
		yyjson_doc_free(doc);
		return bad("AE_IDS", "more than 65536 leaves or entries", code, reason, cap);
	}
	struct ae_node *leaves = calloc(n ? n : 1, sizeof(*leaves));
	struct peer_rec *recs = calloc(total ? total : 1, sizeof(*recs));
	yyjson_mut_doc *mdoc = yyjson_mut_doc_new(NULL);
	int rv = 0;
	if (!leaves || !recs || !mdoc) {
		*code = AGS_APP_INTERNAL_ERROR;
		snprintf(reason, cap, "out of memory");
		rv = AGS_ERR_NOMEM;
		goto out;
	}
	size_t i = 0, nr = 0;
	yyjson_arr_foreach(arr, idx, max, o)
	{
		const char *p = yyjson_get_str(yyjson_obj_get(o, "p"));
		yyjson_val *e = yyjson_obj_get(o, "e");
		int l = p ? prefix_parse(p, &leaves[i].v) : -1;
		if (l < 0 || !yyjson_is_arr(e)) {
			rv = bad("AE_IDS", "each leaf needs p (0-6 hex digits) and e (an array)",
			         code, reason, cap);
			goto out;
		}
		leaves[i].len = l;
		size_t j, jm;
		yyjson_val *r;
		yyjson_arr_foreach(e, j, jm, r)
		{
			const char *id = yyjson_get_str(yyjson_obj_get(r, "id"));
			const char *c = yyjson_get_str(yyjson_obj_get(r, "h"));
			yyjson_val *v = yyjson_obj_get(r, "v");
			if (!id || !c || !yyjson_is_int(v)) {
				rv = bad("AE_IDS", "each entry needs id, v (an integer) and h",
				         code, reason, cap);
				goto out;
			}
			recs[nr++] = (struct peer_rec){id, c, yyjson_get_sint(v), 0, 0};
		}
		i++;
	}
	qsort(recs, nr, sizeof(*recs), rec_cmp);
	/* Our records under those leaves. */
	struct ae_scan sc = {.nodes = leaves, .n = reply ? 0 : n, .doc = mdoc};
	for (size_t k = 0; k < sc.n; k++)
		if (!(leaves[k].e = yyjson_mut_arr(mdoc)))
			goto out;
	if (sc.n && scan(s, &sc) != 0)
		goto out;
	/*
	 * A list (reply false): ours that the peer lacks, or holds in an older or
	 * another version, go in the log again; the peer's that we lack, or hold
	 * older or other, are listed back (reply true). A reply: the peer wants
	 * those of ours, whatever they are now.
	 */
	size_t cap_ids = 0, n_ids = 0;
	const char **ids = NULL;
	if (reply) {
		if (nr && (ids = calloc(nr, sizeof(*ids))))
			for (size_t k = 0; k < nr; k++)
				ids[n_ids++] = recs[k].id;
	}
	for (size_t k = 0; k < n && !reply; k++) {
		size_t j, jm;
		yyjson_mut_val *r;
		yyjson_mut_arr_foreach(leaves[k].e, j, jm, r)
		{
			struct peer_rec key = {.id =
			                           yyjson_mut_get_str(yyjson_mut_obj_get(r, "id"))};
			const char *h = yyjson_mut_get_str(yyjson_mut_obj_get(r, "h"));
			int64_t v = yyjson_mut_get_sint(yyjson_mut_obj_get(r, "v"));
			struct peer_rec *pr = bsearch(&key, recs, nr, sizeof(*recs), rec_cmp);
			if (pr)
				pr->seen = 1;
			if (pr && (pr->v > v || (pr->v == v && strcmp(pr->c, h) == 0))) {
				if (pr->v == v)
					pr->same = 1;
				continue;
			}
			if (pr && pr->v < v)
				pr->same = 1; /* ours is newer: the peer gets it, we want nothing */
			if (n_ids == cap_ids) {
				size_t nc = cap_ids ? 2 * cap_ids : 64;
				const char **ni = realloc(ids, nc * sizeof(*ids));
				if (!ni)
					break;
				ids = ni;
				cap_ids = nc;
			}
			ids[n_ids++] = key.id;
		}
	}
	if (n_ids) {
		size_t moved = 0;
		pthread_mutex_lock(s->h->store_mu);
		int r = ags_store_relog(s->h->store, ids, n_ids, &moved, NULL);
		pthread_mutex_unlock(s->h->store_mu);
		s->st.ae_relogged += moved;
		ags_sync_log(
		    s, r ? AGS_LOG_WARN : AGS_LOG_INFO,
		    "anti-entropy with %s: %zu of our records %s; %s (anti-entropy bytes "
		    "so far: %llu out, %llu in)",
		    s->peer_id, moved, reply ? "asked for by the peer" : "differ from the peer's",
		    r ? "cannot put them in the log again" : "sent again",
		    (unsigned long long)s->st.ae_bytes_out, (unsigned long long)s->st.ae_bytes_in);
		if (r == 0 && moved && s->h->changed)
			s->h->changed(s->h->ud, s->sud);
	}
	free(ids);
	if (!reply) {
		/* The peer's records we lack, or hold older or other: ask for them. */
		yyjson_mut_doc *rd = yyjson_mut_doc_new(NULL);
		yyjson_mut_val *rr = rd ? yyjson_mut_obj(rd) : NULL;
		yyjson_mut_val *la = rr ? yyjson_mut_arr(rd) : NULL;
		yyjson_mut_val *lf = la ? yyjson_mut_obj(rd) : NULL;
		yyjson_mut_val *e = lf ? yyjson_mut_arr(rd) : NULL;
		size_t want = 0;
		if (e) {
			yyjson_mut_doc_set_root(rd, rr);
			for (size_t k = 0; k < nr && want < AE_FRAME_ITEMS_MAX; k++) {
				if (recs[k].same)
					continue;
				yyjson_mut_val *w = yyjson_mut_obj(rd);
				if (!w || !yyjson_mut_obj_add_strcpy(rd, w, "id", recs[k].id) ||
				    !yyjson_mut_obj_add_int(rd, w, "v", recs[k].v) ||
				    !yyjson_mut_obj_add_strcpy(rd, w, "h", recs[k].c) ||
				    !yyjson_mut_arr_append(e, w))
					break;
				want++;
			}
		}
		if (want && yyjson_mut_obj_add_str(rd, lf, "p", "") &&
		    yyjson_mut_obj_add_val(rd, lf, "e", e) && yyjson_mut_arr_append(la, lf) &&
		    yyjson_mut_obj_add_val(rd, rr, "leaves", la) &&
		    yyjson_mut_obj_add_bool(rd, rr, "reply", true))
			(void)send_doc(s, AGS_FRAME_AE_IDS, rd);
		else
			yyjson_mut_doc_free(rd);
	}
out:
	yyjson_mut_doc_free(mdoc);
	yyjson_doc_free(doc);
	free(leaves);
	free(recs);
	return rv;
}
