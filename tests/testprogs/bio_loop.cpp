// A TLS client and server in one thread over an in-memory BIO pair, as fast
// as the library goes: every iteration the client SSL_writes SIZE bytes and
// the server SSL_reads them all. The tightest load a single CPU can put on
// clearcap's probes (no socket, no syscall), used by the bpf tests to check
// that a full-speed stream is captured whole, or its loss counted.
//
// usage: bio_loop ITERATIONS SIZE TOKEN
// The client's stream is TOKEN, then pseudo-random printable bytes (the
// same for every run; JSON carries them as text). Prints one JSON line:
//   {"pid", "iterations", "size", "bytes", "sha256", "seconds"}
// with the SHA-256 of everything written (= everything read).
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "bio_loop: %s\n", what);
  ERR_print_errors_fp(stderr);
  std::exit(1);
}

void pump(BIO* from, BIO* to, std::vector<unsigned char>& tmp) {
  int n;
  while ((n = BIO_read(from, tmp.data(), static_cast<int>(tmp.size()))) > 0)
    if (BIO_write(to, tmp.data(), n) != n) die("BIO_write to the peer fell short");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bio_loop ITERATIONS SIZE TOKEN\n");
    return 2;
  }
  const long iterations = std::atol(argv[1]);
  const size_t size = static_cast<size_t>(std::atol(argv[2]));
  const std::string token = argv[3];
  if (iterations <= 0 || size < token.size() || size > (1u << 20)) die("bad arguments");

  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (!key || !cert) die("key or certificate");
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  if (!X509_sign(cert, key, EVP_sha256())) die("X509_sign");
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  if (SSL_CTX_use_certificate(sctx, cert) != 1 || SSL_CTX_use_PrivateKey(sctx, key) != 1) die("server key");
  // A BIO pair per side with room for several records: writes never block.
  const size_t room = 4 * size + (1 << 16);
  BIO *c_int, *c_net, *s_int, *s_net;
  if (!BIO_new_bio_pair(&c_int, room, &c_net, room) || !BIO_new_bio_pair(&s_int, room, &s_net, room))
    die("BIO_new_bio_pair");
  SSL* client = SSL_new(cctx);
  SSL* server = SSL_new(sctx);
  SSL_set_bio(client, c_int, c_int);
  SSL_set_bio(server, s_int, s_int);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  std::vector<unsigned char> tmp(room);
  for (int i = 0; i < 100 && !(SSL_is_init_finished(client) && SSL_is_init_finished(server)); ++i) {
    SSL_do_handshake(client);
    pump(c_net, s_net, tmp);
    SSL_do_handshake(server);
    pump(s_net, c_net, tmp);
  }
  if (!SSL_is_init_finished(client) || !SSL_is_init_finished(server)) die("handshake");

  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
  std::vector<unsigned char> out(size), in(size);
  unsigned long long total = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < iterations; ++it) {
    // Printable and hard to compress (xorshift over a 64-letter alphabet):
    // a capture file's compressor must do real work, as on real traffic.
    for (size_t j = 0; j < size; ++j) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      out[j] = static_cast<unsigned char>(kAlphabet[rng & 63]);
    }
    if (it == 0) std::copy(token.begin(), token.end(), out.begin());
    if (SSL_write(client, out.data(), static_cast<int>(size)) != static_cast<int>(size)) die("SSL_write");
    EVP_DigestUpdate(sha, out.data(), size);
    pump(c_net, s_net, tmp);
    size_t got = 0;
    while (got < size) {
      int n = SSL_read(server, in.data() + got, static_cast<int>(size - got));
      if (n <= 0) die("SSL_read");
      got += static_cast<size_t>(n);
    }
    if (in != out) die("the server read other bytes than the client wrote");
    pump(s_net, c_net, tmp);  // nothing expected; keeps the pair empty
    total += size;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_DigestFinal_ex(sha, md, &mdlen);
  char hex[65];
  for (unsigned i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
  std::printf("{\"pid\": %d, \"iterations\": %ld, \"size\": %zu, \"bytes\": %llu, \"sha256\": \"%s\", \"seconds\": %.3f}\n",
              getpid(), iterations, size, total, hex, secs);
  return 0;
}
