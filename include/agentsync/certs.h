/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Certificates for a set of nodes: one private CA and, per node, a key and a
 * certificate it signs. Used by `agentsync certs init` and by a daemon
 * started with no configuration.
 *
 * Files written in `dir` (created 0700 when missing):
 *   ca.pem, ca-key.pem          the CA (CN "agentsync CA", ~10 years)
 *   <node>.pem, <node>-key.pem  each node (CN and DNS SAN = node id, IP SANs
 *                               127.0.0.1 and ::1, serverAuth + clientAuth,
 *                               ~2 years, random serial)
 * Key files are mode 0600. Files are written to a temporary name and renamed,
 * so a reader never sees half a file.
 */
#ifndef AGENTSYNC_CERTS_H
#define AGENTSYNC_CERTS_H

#include <stddef.h>

#include "agentsync/agentsync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Key types for ags_certs_init. */
#define AGS_CERTS_ED25519 0 /* default */
#define AGS_CERTS_P256    1

/* Longest node id, in bytes. */
#define AGS_CERTS_ID_MAX 64

/*
 * Makes sure `dir` holds a CA and a certificate for each of the `n` node ids
 * in `nodes`, with keys of `key_type` (AGS_CERTS_ED25519 or AGS_CERTS_P256)
 * for whatever is created.
 *
 * An existing CA (both ca.pem and ca-key.pem present) is reused, so nodes can
 * be added later; when only one of the two exists, nothing is written. An
 * existing node certificate is kept when it can be read, its key matches it
 * and it was issued by this CA; otherwise it is replaced.
 *
 * A node id is 1 to 64 bytes of [A-Za-z0-9._-], and not "ca" (whose files
 * would be the CA's). Every id is checked before anything is written.
 *
 * Errors: AGS_ERR_INVALID (a bad node id, named in err, or bad arguments),
 * AGS_ERR_IO (a file or the directory cannot be read or written; err names
 * it), AGS_ERR_TLS (an existing CA cannot be read, or GnuTLS failed; err has
 * GnuTLS's message), AGS_ERR_NOT_FOUND (one of ca.pem and ca-key.pem is
 * missing), AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_certs_init(const char *dir, const char *const *nodes, size_t n, int key_type,
                              ags_error *err);

/*
 * For a daemon started with no configuration: ags_certs_init(dir, &node, 1,
 * AGS_CERTS_ED25519, err). Errors as ags_certs_init.
 */
AGS_EXPORT int ags_certs_self_signed(const char *dir, const char *node, ags_error *err);

/*
 * Writes to `out` the pin of the (first) certificate in the PEM file
 * `cert_file`: 64 lowercase hex digits of the SHA-256 of its
 * SubjectPublicKeyInfo, plus NUL; the form ags_tls_config.pins takes.
 * Errors: AGS_ERR_INVALID, AGS_ERR_IO (err names the file), AGS_ERR_TLS (not
 * a PEM certificate).
 */
AGS_EXPORT int ags_certs_pin(const char *cert_file, char out[65], ags_error *err);

/*
 * Writes to `out` the node id that the (first) certificate in the PEM file
 * `cert_file` names, as its peers read it: its CN, else its first DNS SAN.
 * A node with this certificate must have this id (ags_node_config.node_id),
 * so a caller without a configured id can take it from here.
 * Errors: AGS_ERR_INVALID, AGS_ERR_IO (err names the file), AGS_ERR_TLS (not
 * a PEM certificate), AGS_ERR_NOT_FOUND (no CN or DNS SAN that is a valid
 * node id: 1 to AGS_CERTS_ID_MAX bytes of [A-Za-z0-9._-]).
 */
AGS_EXPORT int ags_certs_node_id(const char *cert_file, char out[AGS_CERTS_ID_MAX + 1],
                                 ags_error *err);

#ifdef __cplusplus
}
#endif

#endif /* AGENTSYNC_CERTS_H */
