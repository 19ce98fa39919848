/* Test certificates made at test time with the OpenSSL API: a self-signed
 * EC P-256 certificate for "localhost" and 127.0.0.1 that is its own CA,
 * so that a client trusting that one file verifies a server presenting it.
 * Not for anything but tests. */
#ifndef SB_TEST_TLS_CERT_H
#define SB_TEST_TLS_CERT_H

/* Writes dir/name.pem (certificate) and dir/name.key (private key).
 * Returns 0 or -1. */
int tls_cert_make(const char *dir, const char *name);

#endif
