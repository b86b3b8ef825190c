// The in-process module tests need root (BPF, uprobes). Without it they
// are skipped (exit 77) unless CI is set, where a skip is a failure.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/privileges.h"
#include "modules/registry.h"
#include "module_fixture.h"

namespace clearcap::test {

TestCert make_test_cert() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  auto pem = [](auto write) {
    BIO* b = BIO_new(BIO_s_mem());
    write(b);
    char* p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    std::string s(p, static_cast<size_t>(n));
    BIO_free(b);
    return s;
  };
  TestCert c;
  c.cert_pem = pem([&](BIO* b) { PEM_write_bio_X509(b, x); });
  c.key_pem = pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(x);
  EVP_PKEY_free(key);
  return c;
}

void openssl_serve_once(const TestCert& cert, int fd, const std::string& reply, std::string* got) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  BIO* cb = BIO_new_mem_buf(cert.cert_pem.data(), static_cast<int>(cert.cert_pem.size()));
  BIO* kb = BIO_new_mem_buf(cert.key_pem.data(), static_cast<int>(cert.key_pem.size()));
  X509* x = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  EVP_PKEY* k = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  SSL_CTX_use_certificate(ctx, x);
  SSL_CTX_use_PrivateKey(ctx, k);
  SSL* s = SSL_new(ctx);
  SSL_set_fd(s, fd);
  if (SSL_accept(s) == 1) {
    char buf[256];
    int n = SSL_read(s, buf, sizeof(buf));
    if (n > 0) got->assign(buf, static_cast<size_t>(n));
    SSL_write(s, reply.data(), static_cast<int>(reply.size()));
  }
  SSL_free(s);
  X509_free(x);
  EVP_PKEY_free(k);
  BIO_free(cb);
  BIO_free(kb);
  SSL_CTX_free(ctx);
}

}  // namespace clearcap::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (auto r = clearcap::check_privileges(); !r || !clearcap::check_btf()) {
    std::fprintf(stderr, "module tests need root and kernel BTF: %s\n", r ? "no BTF" : r.error().message.c_str());
    return std::getenv("CI") ? 1 : 77;
  }
  clearcap::register_module_sources();
  return RUN_ALL_TESTS();
}
