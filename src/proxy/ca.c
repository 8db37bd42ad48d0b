/*
 * ca.c: see ca.h. Every certificate operation is OpenSSL's; this file only decides the
 * fields: the CA (CA:TRUE, keyCertSign, 10 years), host certificates (CA:FALSE, serverAuth,
 * the host as subjectAltName, 30 days from an hour ago, random serials).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca.h"
#include "fd-util.h"
#include "macro.h"

#define SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

struct ca {
	X509 *cert;
	EVP_PKEY *key;
	EVP_PKEY *leaf_key;
	struct {
		char host[HOST_MAX];
		X509 *cert;
	} cache[CA_CACHE_MAX];
	size_t n_cache, next_evict;
};

static EVP_PKEY *
new_key(void)
{
	return EVP_EC_gen("P-256");
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EINVAL;
}

static int
random_serial(X509 *cert)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	raw[0] &= 0x7f; /* positive */
	BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
	int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	return ok ? 0 : -EIO;
}

static X509 *
make_ca(EVP_PKEY *key)
{
	X509 *c = X509_new();
	if (!c)
		return NULL;
	char cn[128], host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	snprintf(cn, sizeof(cn), "clawbox interception CA (%s)", host);
	X509_NAME *name = X509_get_subject_name(c);
	bool ok = X509_set_version(c, 2) && random_serial(c) == 0 &&
	          X509_gmtime_adj(X509_getm_notBefore(c), -3600) &&
	          X509_gmtime_adj(X509_getm_notAfter(c), 10L * 365 * 24 * 3600) &&
	          X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	                                     (const unsigned char *)"clawbox", -1, -1, 0) &&
	          X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
	                                     -1, -1, 0) &&
	          X509_set_issuer_name(c, name) && X509_set_pubkey(c, key) &&
	          add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") == 0 &&
	          add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
	          add_ext(c, c, NID_subject_key_identifier, "hash") == 0 &&
	          add_ext(c, c, NID_authority_key_identifier, "keyid:always") == 0 &&
	          X509_sign(c, key, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(c);
		return NULL;
	}
	return c;
}

/* Writes data to DIR/name atomically (a temporary file, then rename), with this mode. */
static int
write_file(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
	char tmp[4096], path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%d", dir, name, (int)getpid());
	_cleanup_close_ int fd =
	    open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return NEG_ERRNO();
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
		int r = NEG_ERRNO();
		unlink(tmp);
		return r;
	}
	return 0;
}

static int
pem_of(X509 *cert, EVP_PKEY *key, char **ret, size_t *ret_len)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return -ENOMEM;
	int ok = cert ? PEM_write_bio_X509(b, cert)
	              : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	if (!ok || n <= 0 || !(*ret = malloc((size_t)n))) {
		BIO_free(b);
		return -ENOMEM;
	}
	memcpy(*ret, data, (size_t)n);
	*ret_len = (size_t)n;
	BIO_free(b);
	return 0;
}

int
ca_write_bundle(const char *dir, const char **why)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	_cleanup_close_ int sys = open(SYSTEM_BUNDLE, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int own = open(path, O_RDONLY | O_CLOEXEC);
	if (own < 0) {
		*why = "cannot read the CA certificate";
		return NEG_ERRNO();
	}
	/* The system bundle is about 200 KiB; 8 MiB bounds it. */
	size_t max = 8 << 20, len = 0;
	_cleanup_free_ char *buf = malloc(max);
	if (!buf)
		return -ENOMEM;
	if (sys >= 0) {
		ssize_t n = read_full(sys, buf, max - 65536);
		if (n < 0) {
			*why = "cannot read " SYSTEM_BUNDLE;
			return (int)n;
		}
		len = (size_t)n;
		if (len > 0 && buf[len - 1] != '\n')
			buf[len++] = '\n';
	}
	ssize_t n = read_full(own, buf + len, max - len);
	if (n <= 0) {
		*why = "cannot read the CA certificate";
		return n < 0 ? (int)n : -EINVAL;
	}
	len += (size_t)n;
	int r = write_file(dir, "bundle.crt", buf, len, 0644);
	if (r < 0)
		*why = "cannot write bundle.crt";
	return r;
}

static int
create(const char *dir, const char **why)
{
	EVP_PKEY *key = new_key();
	X509 *cert = key ? make_ca(key) : NULL;
	_cleanup_free_ char *kpem = NULL, *cpem = NULL;
	size_t klen = 0, clen = 0;
	int r = cert ? 0 : -EIO;
	if (r == 0)
		r = pem_of(NULL, key, &kpem, &klen);
	if (r == 0)
		r = pem_of(cert, NULL, &cpem, &clen);
	/* The key first: a certificate without its key would be a CA nobody can use. */
	if (r == 0)
		r = write_file(dir, "ca.key", kpem, klen, 0600);
	if (r == 0)
		r = write_file(dir, "ca.crt", cpem, clen, 0644);
	if (kpem)
		explicit_bzero(kpem, klen);
	X509_free(cert);
	EVP_PKEY_free(key);
	if (r < 0) {
		*why = "cannot create the CA";
		return r;
	}
	return ca_write_bundle(dir, why);
}

int
ca_load(const char *dir, struct ca **ret, const char **why)
{
	char path[4096];
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*why = "cannot create the CA directory";
		return NEG_ERRNO();
	}
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	int r;
	if (access(path, F_OK) < 0) {
		r = create(dir, why);
		if (r < 0)
			return r;
	}
	_cleanup_close_ int kfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (kfd < 0 || fstat(kfd, &st) < 0) {
		*why = "cannot open ca.key";
		return NEG_ERRNO();
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid()) {
		*why = "ca.key must be a regular file of ours that only we can read (0600)";
		return -EPERM;
	}
	struct ca *ca = calloc(1, sizeof(*ca));
	if (!ca)
		return -ENOMEM;
	FILE *f = fdopen(TAKE_FD(kfd), "r");
	if (f) {
		ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	f = fopen(path, "re");
	if (f) {
		ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	ca->leaf_key = new_key();
	if (!ca->key || !ca->cert || !ca->leaf_key ||
	    X509_check_private_key(ca->cert, ca->key) != 1) {
		*why = "cannot load the CA (ca.key and ca.crt must match)";
		ca_free(ca);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s/bundle.crt", dir);
	if (access(path, F_OK) < 0 && (r = ca_write_bundle(dir, why)) < 0) {
		ca_free(ca);
		return r;
	}
	*ret = ca;
	return 0;
}

void
ca_free(struct ca *ca)
{
	if (!ca)
		return;
	for (size_t i = 0; i < ca->n_cache; i++)
		X509_free(ca->cache[i].cert);
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	EVP_PKEY_free(ca->leaf_key);
	free(ca);
}

EVP_PKEY *
ca_leaf_key(struct ca *ca)
{
	return ca->leaf_key;
}

static X509 *
make_leaf(struct ca *ca, const char *host, enum host_kind kind)
{
	X509 *c = X509_new();
	if (!c)
		return NULL;
	char san[HOST_MAX + 8];
	snprintf(san, sizeof(san), "%s:%s", kind == HOST_NAME ? "DNS" : "IP", host);
	X509_NAME *name = X509_get_subject_name(c);
	bool ok = X509_set_version(c, 2) && random_serial(c) == 0 &&
	          X509_gmtime_adj(X509_getm_notBefore(c), -3600) &&
	          X509_gmtime_adj(X509_getm_notAfter(c), 30L * 24 * 3600) &&
	          X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host,
	                                     -1, -1, 0) &&
	          X509_set_issuer_name(c, X509_get_subject_name(ca->cert)) &&
	          X509_set_pubkey(c, ca->leaf_key) &&
	          add_ext(c, ca->cert, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
	          add_ext(c, ca->cert, NID_key_usage, "critical,digitalSignature") == 0 &&
	          add_ext(c, ca->cert, NID_ext_key_usage, "serverAuth") == 0 &&
	          add_ext(c, ca->cert, NID_subject_alt_name, san) == 0 &&
	          add_ext(c, ca->cert, NID_subject_key_identifier, "hash") == 0 &&
	          add_ext(c, ca->cert, NID_authority_key_identifier, "keyid:always") == 0 &&
	          X509_sign(c, ca->key, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(c);
		return NULL;
	}
	return c;
}

X509 *
ca_cert_for(struct ca *ca, const char *host, enum host_kind kind)
{
	for (size_t i = 0; i < ca->n_cache; i++)
		if (strcmp(ca->cache[i].host, host) == 0)
			return ca->cache[i].cert;
	X509 *c = make_leaf(ca, host, kind);
	if (!c)
		return NULL;
	size_t slot = ca->n_cache < CA_CACHE_MAX ? ca->n_cache++ : ca->next_evict++ % CA_CACHE_MAX;
	if (ca->cache[slot].cert)
		X509_free(ca->cache[slot].cert); /* SSL objects hold their own reference */
	snprintf(ca->cache[slot].host, sizeof(ca->cache[slot].host), "%s", host);
	ca->cache[slot].cert = c;
	return c;
}
