/*
 * ca.h: the per-installation interception CA, and the certificates it signs for service
 * hosts. Made on first use in a directory outside every sandbox (ca.key 0600, ca.crt, and
 * bundle.crt: the system's trust bundle plus ca.crt, which clawbox run mounts at
 * /etc/ssl/certs/ca-certificates.crt inside). Keys are ECDSA P-256 (fast to make and sign);
 * one leaf key serves every host certificate of this process, and each host's certificate is
 * made once and kept in memory.
 */
#ifndef CLAWBOX_CA_H
#define CLAWBOX_CA_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "hostname.h"

#define CA_CACHE_MAX 64

struct ca;

/* Loads DIR/ca.key and DIR/ca.crt, creating the directory (0700), the CA and the bundle when
 * absent. -errno with *ret_why. */
int ca_load(const char *dir, struct ca **ret, const char **ret_why);
void ca_free(struct ca *ca);

/* (Re)writes DIR/bundle.crt from the system bundle and DIR/ca.crt. */
int ca_write_bundle(const char *dir, const char **ret_why);

/* The certificate for host (a name or an address), made or from the cache, borrowed; and
 * the leaf key it certifies. NULL on failure. */
X509 *ca_cert_for(struct ca *ca, const char *host, enum host_kind kind);
EVP_PKEY *ca_leaf_key(struct ca *ca);

#endif
